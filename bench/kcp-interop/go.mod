module frp-rs/kcp-interop

go 1.19

require github.com/xtaci/kcp-go/v5 v5.6.2
