package handlers

import (
	"context"
	"net"
)

type connKey struct{}

// ConnContext is the http.Server's ConnContext: it keeps each request's connection at hand for
// the handlers that tune it (downloads set TCP_NOTSENT_LOWAT).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

func connOf(ctx context.Context) net.Conn {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	return c
}

// downloadLowWater is how much unsent data a download leaves in the kernel before its writes
// block. The kernel wakes a blocked writer only when half of what it holds has gone; with the
// megabytes of an autotuned buffer, a slow reader would leave the writer blocked past the idle
// timeout although bytes keep flowing. With this, every 128 KiB the reader takes lets the next
// write through, and so moves the idle deadline.
const downloadLowWater = 128 << 10
