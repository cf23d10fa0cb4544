module github.com/convocore/webhook-gateway/bench/loadgen

go 1.25.0
