-- wrk script: posts the spec's samples in a round-robin mix, each made
-- unique (its createdAt carries a per-thread counter) so that the gateway's
-- de-duplication streams every one of them.
--
-- Arguments (after --): keepalive|plain SAMPLE_FILE...
--   keepalive: send "Connection: keep-alive"; plain: send no Connection
--   header (HTTP/1.1's default keep-alive, the Pistache trap).
-- Fixed rates are offered by bench/loadgen instead: wrk's paced mode
-- offers less than asked whenever responses slow down.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local parts = {}

function init(args)
  local mode = args[1]
  for i = 2, #args do
    local f = assert(io.open(args[i], "r"))
    local body = f:read("*a")
    f:close()
    local s, e = body:find('"createdAt": %d+')
    assert(s, "no createdAt in " .. args[i])
    table.insert(parts, { body:sub(1, s - 1) .. '"createdAt": ', body:sub(e + 1) })
  end
  wrk.method = "POST"
  wrk.path = "/webhooks"
  wrk.headers["Content-Type"] = "application/json"
  if mode == "keepalive" then
    wrk.headers["Connection"] = "keep-alive"
  end
  counter = id * 1000000000
end

function request()
  counter = counter + 1
  local p = parts[(counter % #parts) + 1]
  return wrk.format(nil, nil, nil, p[1] .. (1718035200000 + counter) .. p[2])
end

