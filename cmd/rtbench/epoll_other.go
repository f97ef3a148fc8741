//go:build !linux

package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// epollClient stands in for the epoll client (epoll.go), which needs Linux.
type epollClient struct{}

func startEpoll(context.Context, string, int, int, *atomic.Int64, *sync.WaitGroup) (*epollClient, error) {
	return nil, errors.New("-client epoll needs Linux: use -client library")
}

func (*epollClient) open(context.Context, int, *subscriber, string, string) error {
	panic("unreachable: startEpoll fails off Linux")
}
