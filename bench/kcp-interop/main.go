// Interop check of frp-rs's KCP (common/src/transport/kcp.rs) against kcp-go, configured as
// frp 0.70 configures it (golib net/dial.go for the client, frp pkg/util/net/kcp.go for the
// server). See run.sh.
//
//	go run . server 127.0.0.1:7000      # kcp-go echo server
//	go run . client 127.0.0.1:7000 N    # kcp-go client: N bytes echoed back identical
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 131 % 251)
	}
	return b
}

func configure(s *kcp.UDPSession, snd, rcv int) {
	s.SetStreamMode(true)
	s.SetWriteDelay(true)
	s.SetNoDelay(1, 20, 2, 1)
	s.SetMtu(1350)
	s.SetWindowSize(snd, rcv)
	s.SetACKNoDelay(false)
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: server ADDR | client ADDR N")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		l, err := kcp.ListenWithOptions(os.Args[2], nil, 10, 3)
		if err != nil {
			panic(err)
		}
		fmt.Println("listening", l.Addr())
		for {
			s, err := l.AcceptKCP()
			if err != nil {
				panic(err)
			}
			configure(s, 1024, 1024)
			go func() { _, _ = io.Copy(s, s) }()
		}
	case "client":
		n, _ := strconv.Atoi(os.Args[3])
		s, err := kcp.DialWithOptions(os.Args[2], nil, 10, 3)
		if err != nil {
			panic(err)
		}
		configure(s, 128, 512)
		data := pattern(n)
		start := time.Now()
		go func() { _, _ = s.Write(data) }()
		got := make([]byte, n)
		_ = s.SetReadDeadline(time.Now().Add(60 * time.Second))
		if _, err := io.ReadFull(s, got); err != nil {
			fmt.Println("FAIL read:", err)
			os.Exit(1)
		}
		if !bytes.Equal(got, data) {
			fmt.Println("FAIL: echoed bytes differ")
			os.Exit(1)
		}
		fmt.Printf("OK %d bytes in %v, %d lost data shards recovered by FEC\n", n, time.Since(start), kcp.DefaultSnmp.FECRecovered)
	}
}
