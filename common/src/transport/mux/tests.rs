use super::*;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const PATIENCE: Duration = Duration::from_secs(20);

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f).await.expect("in time")
}

/// Writes `data`, shuts down, and reads the peer's whole reply.
async fn send_and_collect<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, data: Vec<u8>) -> Vec<u8> {
    let (mut r, mut w) = tokio::io::split(&mut s);
    let write = async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let read = async move {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::join!(write, read);
    got
}

/// Echoes a stream until EOF, then half-closes.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(s: S) {
    let (mut r, mut w) = tokio::io::split(s);
    tokio::io::copy(&mut r, &mut w).await.unwrap();
    w.shutdown().await.unwrap();
}

fn tokio_yamux_config() -> tokio_yamux::Config {
    tokio_yamux::Config {
        max_stream_window_size: MAX_STREAM_WINDOW,
        ..Default::default()
    }
}

fn pipe() -> (BoxStream, BoxStream) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (Box::new(a), Box::new(b))
}

/// Ours as the client (frpc), an independent implementation as the server: 16 streams each
/// carry 1.5 MiB both ways (past the initial window, so window updates must flow) and close
/// half by half.
#[tokio::test]
async fn our_client_interoperates_with_tokio_yamux_server() {
    let (a, b) = pipe();
    let (opener, driver) = client(a, config(30));
    let drv = tokio::spawn(driver);
    let mut server = tokio_yamux::Session::new_server(b, tokio_yamux_config());
    tokio::spawn(async move {
        while let Some(Ok(s)) = server.next().await {
            tokio::spawn(echo(s));
        }
    });
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let s = opener.open().unwrap();
        assert_eq!(s.id(), 2 * i + 1, "client stream ids are odd, from 1");
        tasks.push(tokio::spawn(async move {
            let data = pattern(1536 * 1024, i);
            let got = send_and_collect(s, data.clone()).await;
            assert!(got == data, "stream {i} echoed intact");
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    drop(opener);
    drv.abort();
}

/// An independent implementation as the client (a Go frpc's role), ours as the server.
#[tokio::test]
async fn tokio_yamux_client_interoperates_with_our_server() {
    let (a, b) = pipe();
    let (mut incoming, driver) = server(b, config(30));
    tokio::spawn(driver);
    tokio::spawn(async move {
        while let Some(s) = incoming.accept().await {
            tokio::spawn(echo(s));
        }
    });
    let mut session = tokio_yamux::Session::new_client(a, tokio_yamux_config());
    let control = session.control();
    tokio::spawn(async move { while let Some(Ok(_)) = session.next().await {} });
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let mut control = control.clone();
        tasks.push(tokio::spawn(async move {
            let s = control.open_stream().await.unwrap();
            let data = pattern(1536 * 1024, i);
            let got = send_and_collect(s, data.clone()).await;
            assert!(got == data, "stream {i} echoed intact");
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
}

/// Both ends ours: a 20 MiB one-way transfer read in small pieces (many window updates), and
/// the session carrying a second stream meanwhile.
#[tokio::test]
async fn ours_to_ours_large_transfer_with_small_reads() {
    let (opener, mut incoming) = pair();
    let data = pattern(20 * 1024 * 1024, 7);
    let d2 = data.clone();
    let mut s = opener.open().unwrap();
    let writer = tokio::spawn(async move {
        s.write_all(&d2).await.unwrap();
        s.shutdown().await.unwrap();
        s
    });
    let mut peer = within(incoming.accept()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = within(peer.read(&mut buf)).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == data);
    // The other direction still works after the first one has closed.
    peer.write_all(b"bye").await.unwrap();
    peer.shutdown().await.unwrap();
    let mut s = within(writer).await.unwrap();
    let mut back = Vec::new();
    within(s.read_to_end(&mut back)).await.unwrap();
    assert_eq!(back, b"bye");
}

// --- the wire, frame by frame --------------------------------------------------------------

type Drive = tokio::task::JoinHandle<io::Result<()>>;

/// Our server session on one end of a pipe; the test speaks raw frames on the other.
fn raw_server(cfg: Config) -> (DuplexStream, Incoming, Drive) {
    let (raw, b) = tokio::io::duplex(1 << 16);
    let (incoming, driver) = server(Box::new(b), cfg);
    (raw, incoming, tokio::spawn(driver))
}

/// Our client session on one end of a pipe; the test speaks raw frames on the other.
fn raw_client(cfg: Config) -> (DuplexStream, Opener, Drive) {
    let (raw, a) = tokio::io::duplex(1 << 16);
    let (opener, driver) = client(Box::new(a), cfg);
    (raw, opener, tokio::spawn(driver))
}

/// Opens stream 1 from the raw side as a Go frpc does and accepts it.
async fn raw_open(raw: &mut DuplexStream, incoming: &mut Incoming) -> Stream {
    raw.write_all(&header(1, FLAG_SYN, 1, GROWTH))
        .await
        .unwrap();
    read_header(raw).await;
    within(incoming.accept()).await.unwrap()
}

fn header(ty: u8, flags: u16, id: u32, len: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[1] = ty;
    h[2..4].copy_from_slice(&flags.to_be_bytes());
    h[4..8].copy_from_slice(&id.to_be_bytes());
    h[8..12].copy_from_slice(&len.to_be_bytes());
    h
}

/// (type, flags, stream, length)
async fn read_header(s: &mut DuplexStream) -> (u8, u16, u32, u32) {
    let mut h = [0u8; 12];
    within(s.read_exact(&mut h)).await.unwrap();
    assert_eq!(h[0], 0, "version 0");
    (
        h[1],
        u16::from_be_bytes([h[2], h[3]]),
        u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
    )
}

const GROWTH: u32 = MAX_STREAM_WINDOW - INITIAL_WINDOW;

#[tokio::test]
async fn server_acks_at_once_answers_pings_and_delivers_data_then_eof() {
    let (mut raw, mut incoming, _) = raw_server(config(30));
    raw.write_all(&header(1, FLAG_SYN, 1, GROWTH))
        .await
        .unwrap();
    // ACKed before anything is accepted or written, with frp's window growth.
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_ACK, 1, GROWTH)
    );
    raw.write_all(&header(2, FLAG_SYN, 0, 0xdead))
        .await
        .unwrap();
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_PING, FLAG_ACK, 0, 0xdead)
    );
    // Data, then FIN on a data frame: the reader sees the bytes, then EOF.
    raw.write_all(&header(0, 0, 1, 5)).await.unwrap();
    raw.write_all(b"hello").await.unwrap();
    raw.write_all(&header(0, FLAG_FIN, 1, 0)).await.unwrap();
    let mut s = within(incoming.accept()).await.unwrap();
    let mut got = Vec::new();
    within(s.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"hello");
    // Our write and shutdown: one data frame, then a FIN.
    s.write_all(b"back").await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(read_header(&mut raw).await, (TYPE_DATA, 0, 1, 4));
    let mut body = [0u8; 4];
    raw.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"back");
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_FIN, 1, 0)
    );
}

#[tokio::test]
async fn client_opens_with_syn_and_growth_and_respects_the_send_window() {
    let (mut raw, opener, _) = raw_client(config(30));
    let mut s = opener.open().unwrap();
    let data = pattern(1024 * 1024, 3);
    let d2 = data.clone();
    let writer = tokio::spawn(async move {
        s.write_all(&d2).await.unwrap();
        s
    });
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_SYN, 1, GROWTH)
    );
    // The peer never ACKs with growth; it grants 100 KiB at a time once what it had granted
    // has arrived. At no point may more data have arrived than was granted.
    let mut granted = INITIAL_WINDOW as usize;
    let mut got = Vec::new();
    while got.len() < data.len() {
        let (ty, flags, id, len) = read_header(&mut raw).await;
        assert_eq!((ty, flags, id), (TYPE_DATA, 0, 1));
        let mut body = vec![0u8; len as usize];
        raw.read_exact(&mut body).await.unwrap();
        got.extend_from_slice(&body);
        assert!(
            got.len() <= granted,
            "{} bytes sent, {granted} granted",
            got.len()
        );
        if got.len() == granted {
            raw.write_all(&header(1, 0, 1, 100 * 1024)).await.unwrap();
            granted += 100 * 1024;
        }
    }
    assert!(got == data);
    drop(within(writer).await.unwrap());
    // Dropping the stream without shutdown closes it gracefully.
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_FIN, 1, 0)
    );
}

#[tokio::test]
async fn reader_grants_window_once_half_is_consumed() {
    let (mut raw, mut incoming, _) = raw_server(config(30));
    let mut s = raw_open(&mut raw, &mut incoming).await;
    let chunk = pattern(64 * 1024, 1);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 4 * 1024 * 1024];
        within(s.read_exact(&mut buf)).await.unwrap();
        s
    });
    // 4 MiB: within the 6 MiB window, past the 3 MiB at which an update is due.
    let mut write = raw;
    for _ in 0..64 {
        write
            .write_all(&header(0, 0, 1, chunk.len() as u32))
            .await
            .unwrap();
        write.write_all(&chunk).await.unwrap();
    }
    let (ty, flags, id, delta) = read_header(&mut write).await;
    assert_eq!((ty, flags, id), (TYPE_WINDOW_UPDATE, 0, 1));
    assert!(delta >= MAX_STREAM_WINDOW / 2, "delta {delta}");
    within(reader).await.unwrap();
}

#[tokio::test]
async fn exceeding_the_receive_window_ends_the_session() {
    let (mut raw, mut incoming, drv) = raw_server(config(30));
    let mut s = raw_open(&mut raw, &mut incoming).await;
    raw.write_all(&header(0, 0, 1, MAX_STREAM_WINDOW + 1))
        .await
        .unwrap();
    let err = within(drv).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("receive window"), "{err}");
    // The stream fails, the accept loop ends.
    let mut buf = [0u8; 4];
    assert!(within(s.read(&mut buf)).await.is_err());
    assert!(within(incoming.accept()).await.is_none());
}

#[tokio::test]
async fn bad_version_and_unknown_type_end_the_session() {
    for bad in [[1u8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], header(9, 0, 0, 0)] {
        let (mut raw, _incoming, drv) = raw_server(config(30));
        raw.write_all(&bad).await.unwrap();
        let err = within(drv).await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }
}

#[tokio::test]
async fn reset_and_unknown_streams() {
    let mut cfg = config(30);
    cfg.accept_backlog = 1;
    let (mut raw, mut incoming, _) = raw_server(cfg);
    // Backlog of one: the second un-accepted stream is reset.
    raw.write_all(&header(1, FLAG_SYN, 1, 0)).await.unwrap();
    raw.write_all(&header(1, FLAG_SYN, 3, 0)).await.unwrap();
    assert_eq!(read_header(&mut raw).await.1, FLAG_ACK);
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_RST, 3, 0)
    );
    // Data for a stream nobody knows is read and dropped; the session goes on.
    raw.write_all(&header(0, 0, 99, 3)).await.unwrap();
    raw.write_all(b"xyz").await.unwrap();
    raw.write_all(&header(0, 0, 1, 2)).await.unwrap();
    raw.write_all(b"ok").await.unwrap();
    raw.write_all(&header(1, FLAG_RST, 1, 0)).await.unwrap();
    let mut s = within(incoming.accept()).await.unwrap();
    let mut buf = [0u8; 2];
    within(s.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"ok", "data before the reset is still delivered");
    let err = within(s.read(&mut buf)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(
        s.write(b"x").await.unwrap_err().kind(),
        io::ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn streams_beyond_max_streams_are_reset() {
    let mut cfg = config(30);
    cfg.max_streams = 2;
    let (mut raw, mut incoming, _) = raw_server(cfg);
    for id in [1, 3, 5] {
        raw.write_all(&header(1, FLAG_SYN, id, 0)).await.unwrap();
    }
    assert_eq!(read_header(&mut raw).await.1, FLAG_ACK);
    assert_eq!(read_header(&mut raw).await.1, FLAG_ACK);
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_RST, 5, 0)
    );
    // Once one closes, a new one is accepted again.
    let first = within(incoming.accept()).await.unwrap();
    drop(first);
    assert_eq!(read_header(&mut raw).await.1, FLAG_FIN);
    raw.write_all(&header(1, FLAG_SYN, 7, 0)).await.unwrap();
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_ACK, 7, GROWTH)
    );
}

#[tokio::test]
async fn client_resets_streams_the_server_opens() {
    let (mut raw, _opener, _) = raw_client(config(30));
    raw.write_all(&header(1, FLAG_SYN, 2, 0)).await.unwrap();
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_RST, 2, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn unanswered_keepalive_ends_the_session_and_answered_keeps_it() {
    // Answered: the peer echoes each ping; three intervals pass and the session lives.
    let (mut raw, opener, drv) = raw_client(config(5));
    for _ in 0..3 {
        let (ty, flags, id, opaque) = read_header(&mut raw).await;
        assert_eq!((ty, flags, id), (TYPE_PING, FLAG_SYN, 0));
        raw.write_all(&header(2, FLAG_ACK, 0, opaque))
            .await
            .unwrap();
    }
    assert!(!opener.is_closed());
    // Unanswered: 10 s after the next ping the session ends.
    let _ = read_header(&mut raw).await;
    let err = within(drv).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(opener.is_closed());
    assert!(opener.open().is_err());
}

/// A peer that floods pings and never reads: once our answers pile up, we stop reading it,
/// so its writes block (with paused time the runtime goes idle and the timeout fires; were we
/// still reading, the 12 MB would be written long before).
#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_is_not_read_either() {
    let (raw, _incoming, _) = raw_server(config(0));
    let (_rd, mut wr) = tokio::io::split(raw);
    let flood: Vec<u8> = (0..1_000_000u32)
        .flat_map(|i| header(2, FLAG_SYN, 0, i))
        .collect();
    let r = tokio::time::timeout(Duration::from_secs(60), wr.write_all(&flood)).await;
    assert!(
        r.is_err(),
        "12 MB of pings were all read without us reading a pong"
    );
}

#[tokio::test]
async fn peer_going_away_closes_every_stream_and_refuses_new_ones() {
    let (raw, opener, drv) = raw_client(config(30));
    let mut s = opener.open().unwrap();
    drop(raw);
    within(drv).await.unwrap().ok();
    let mut buf = [0u8; 1];
    assert!(within(s.read(&mut buf)).await.is_err());
    assert!(s.write(b"x").await.is_err());
    assert!(opener.open().is_err());
}

/// Random bytes from the peer never panic the driver; it either keeps going or ends with an
/// error.
#[test]
fn driver_survives_random_input() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    proptest!(ProptestConfig::with_cases(256), |(bytes in proptest::collection::vec(any::<u8>(), 0..512), syn in any::<bool>())| {
        rt.block_on(async {
            let (mut raw, mut incoming, drv) = raw_server(config(30));
            if syn {
                raw.write_all(&header(1, FLAG_SYN, 1, GROWTH)).await.unwrap();
            }
            raw.write_all(&bytes).await.unwrap();
            drop(raw);
            let _ = within(drv).await.unwrap();
            while incoming.accept().await.is_some() {}
        });
    });
}

/// A data frame for a stream id we have not opened yet is dropped whole, even when we open
/// that id while its payload is still arriving: the payload must not reach the new stream,
/// past its window (it used to, and the window arithmetic wrapped).
#[tokio::test]
async fn data_for_a_stream_not_yet_opened_is_never_delivered() {
    let (mut raw, opener, drv) = raw_client(config(30));
    let big = MAX_STREAM_WINDOW + 1024 * 1024;
    // A ping first: its answer proves the driver has read everything written with it.
    let mut first = header(TYPE_PING, FLAG_SYN, 0, 7).to_vec();
    first.extend_from_slice(&header(TYPE_DATA, 0, 1, big));
    first.extend_from_slice(&[0xAA; 1000]);
    raw.write_all(&first).await.unwrap();
    assert_eq!(read_header(&mut raw).await, (TYPE_PING, FLAG_ACK, 0, 7));
    let mut s = opener.open().unwrap();
    assert_eq!(s.id(), 1);
    let (mut rd, mut wr) = tokio::io::split(raw);
    // Our SYN and anything else the client sends are drained, so it never blocks on us.
    tokio::spawn(async move { while rd.read(&mut [0u8; 4096]).await.is_ok_and(|n| n > 0) {} });
    let rest = vec![0xBB; big as usize - 1000];
    within(wr.write_all(&rest)).await.unwrap();
    wr.write_all(&header(TYPE_DATA, FLAG_FIN, 1, 2))
        .await
        .unwrap();
    wr.write_all(b"ok").await.unwrap();
    let mut got = Vec::new();
    within(s.read_to_end(&mut got)).await.unwrap();
    assert_eq!(
        got, b"ok",
        "only the frame sent after the stream was opened arrives"
    );
    assert!(!drv.is_finished(), "the session goes on");
}

/// Every count the peer controls is checked: window updates that would overflow our send
/// window saturate, and the session survives them.
#[tokio::test]
async fn window_updates_cannot_wrap_the_send_window() {
    let (mut raw, mut incoming, drv) = raw_server(config(30));
    let mut s = raw_open(&mut raw, &mut incoming).await;
    for _ in 0..3 {
        raw.write_all(&header(TYPE_WINDOW_UPDATE, 0, 1, u32::MAX))
            .await
            .unwrap();
    }
    s.write_all(b"still").await.unwrap();
    assert_eq!(read_header(&mut raw).await, (TYPE_DATA, 0, 1, 5));
    assert!(!drv.is_finished());
}

/// Random well-formed frames (any flags, small stream ids, lengths that may exceed the window
/// or the payload that follows), interleaved with streams we open: no arithmetic wraps (a
/// debug build panics on overflow) and no stream ever holds more than its window.
#[test]
fn random_frames_never_wrap_the_window_arithmetic() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let frame = (
        0u8..4,
        0u16..16,
        0u32..8,
        prop_oneof![0u32..70_000, any::<u32>()],
        0usize..3000,
    );
    let op = prop_oneof![1 => Just(None), 4 => frame.prop_map(Some)];
    proptest!(ProptestConfig::with_cases(128), |(ops in proptest::collection::vec(op, 1..40))| {
        rt.block_on(async {
            let (raw, opener, drv) = raw_client(config(30));
            let (mut rd, mut wr) = tokio::io::split(raw);
            tokio::spawn(async move { while rd.read(&mut [0u8; 4096]).await.is_ok_and(|n| n > 0) {} });
            let mut streams = Vec::new();
            for op in ops {
                match op {
                    None => streams.extend(opener.open().ok()),
                    Some((ty, flags, id, len, payload)) => {
                        let mut f = header(ty, flags, id, len).to_vec();
                        f.extend(std::iter::repeat_n(0x5A, payload));
                        if wr.write_all(&f).await.is_err() {
                            break;
                        }
                    }
                }
                tokio::task::yield_now().await;
                let inner = opener.shared.lock();
                for st in inner.streams.values() {
                    assert!(st.buffered as u64 + st.recv_window as u64 <= MAX_STREAM_WINDOW as u64);
                }
            }
            let _ = wr.shutdown().await;
            let _ = within(drv).await.unwrap();
        });
    });
}

/// A restricted session (frps before a Login): few streams, no window growth, a small unread
/// buffer per stream (a stream over it is reset), until the restriction is lifted.
#[tokio::test]
async fn restricted_session_until_lifted() {
    let mut cfg = config(30);
    cfg.restricted = Some(Restriction {
        max_streams: 2,
        max_buffered: 1000,
    });
    let (mut raw, mut incoming, drv) = raw_server(cfg);
    let limits = incoming.limits();
    for id in [1, 3, 5] {
        raw.write_all(&header(TYPE_WINDOW_UPDATE, FLAG_SYN, id, GROWTH))
            .await
            .unwrap();
    }
    // ACKed without growth: the window stays yamux's initial 256 KiB.
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_ACK, 1, 0)
    );
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_ACK, 3, 0)
    );
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_RST, 5, 0)
    );
    let mut s1 = within(incoming.accept()).await.unwrap();
    let s3 = within(incoming.accept()).await.unwrap();
    // Stream 1 sends more than it may hold unread: reset.
    raw.write_all(&header(TYPE_DATA, 0, 1, 1100)).await.unwrap();
    raw.write_all(&[1u8; 1100]).await.unwrap();
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_RST, 1, 0)
    );
    let err = within(s1.read(&mut [0u8; 16])).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    // Many tiny frames cost their overhead too.
    for _ in 0..40 {
        raw.write_all(&header(TYPE_DATA, 0, 3, 1)).await.unwrap();
        raw.write_all(b"x").await.unwrap();
    }
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_RST, 3, 0)
    );
    drop((s1, s3)); // reset streams close without a FIN
                    // Lifted: full growth, and a stream may hold what its window allows.
    limits.lift();
    raw.write_all(&header(TYPE_WINDOW_UPDATE, FLAG_SYN, 7, GROWTH))
        .await
        .unwrap();
    assert_eq!(
        read_header(&mut raw).await,
        (TYPE_WINDOW_UPDATE, FLAG_ACK, 7, GROWTH)
    );
    let mut s7 = within(incoming.accept()).await.unwrap();
    raw.write_all(&header(TYPE_DATA, 0, 7, 5000)).await.unwrap();
    raw.write_all(&[7u8; 5000]).await.unwrap();
    let mut got = vec![0u8; 5000];
    within(s7.read_exact(&mut got)).await.unwrap();
    assert!(!drv.is_finished());
}

/// Polls the driver until it has nothing left to do for now (it yields after a burst).
async fn drive_a_while(driver: &mut Driver) {
    for _ in 0..64 {
        std::future::poll_fn(|cx| {
            let _ = Pin::new(&mut *driver).poll(cx);
            Poll::Ready(())
        })
        .await;
    }
}

/// A quiet session (most of a fleet of idle clients) reads into a small buffer and holds none
/// while it waits; one whose reads fill the buffer moves to full-size reads (issue 21: every
/// session held 64 KiB, then 4 KiB).
#[tokio::test]
async fn quiet_sessions_keep_a_small_read_buffer() {
    let (mut raw, b) = tokio::io::duplex(1 << 20);
    let (mut incoming, mut driver) = server(Box::new(b), config(30));
    for id in 1..=20 {
        raw.write_all(&header(TYPE_PING, FLAG_SYN, 0, id))
            .await
            .unwrap();
        drive_a_while(&mut driver).await;
    }
    raw.write_all(&header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, GROWTH))
        .await
        .unwrap();
    raw.write_all(&header(TYPE_DATA, 0, 1, 5)).await.unwrap();
    raw.write_all(b"hello").await.unwrap();
    drive_a_while(&mut driver).await;
    assert_eq!(
        driver.rbuf.capacity(),
        0,
        "a waiting session holds a buffer to read into"
    );
    let mut s = within(incoming.accept()).await.unwrap();
    let mut got = [0u8; 5];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello");

    // A burst: the reads fill the buffer, and the next ones are READ_CHUNK large.
    let burst = pattern(200 * 1024, 7);
    raw.write_all(&header(TYPE_DATA, 0, 1, burst.len() as u32))
        .await
        .unwrap();
    raw.write_all(&burst).await.unwrap();
    // Polled once at a time: a poll that ends waiting frees the buffer.
    let (mut biggest, mut full) = (0, false);
    for _ in 0..64 * 64 {
        std::future::poll_fn(|cx| {
            let _ = Pin::new(&mut driver).poll(cx);
            Poll::Ready(())
        })
        .await;
        biggest = biggest.max(driver.rbuf.capacity());
        full |= driver.read_full;
    }
    assert!(full || biggest > QUIET_READ, "{biggest}");
    let mut back = vec![0u8; burst.len()];
    let read = s.read_exact(&mut back);
    let (r, ()) = tokio::join!(read, drive_a_while(&mut driver));
    r.unwrap();
    assert!(back == burst);
}

/// Fairness (issue 21): a session whose socket always has more to read (a bulk sender) must
/// let the other tasks of its thread run after a bounded number of bytes, or it holds the
/// worker while small requests on other sessions wait. On a one-thread runtime, a task queued
/// when the driver starts must run before the driver has read `FAIR_SHARE` + one read (of
/// 4 MiB): a poll gives way at the first read that reaches its share.
#[tokio::test]
async fn a_driver_whose_socket_never_blocks_lets_other_tasks_run() {
    use crate::io::join::FAIR_SHARE;
    use crate::io::testing::AlwaysReady;
    use std::sync::atomic::Ordering::Relaxed;
    let mut wire = header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, GROWTH).to_vec();
    for _ in 0..64 {
        wire.extend(header(TYPE_DATA, 0, 1, 64 * 1024));
        wire.extend(std::iter::repeat_n(0x5a, 64 * 1024));
    }
    let total = wire.len();
    let session = AlwaysReady::new(wire, true);
    let fed = session.read.clone();
    let (_incoming, driver) = server(Box::new(session), config(30));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let seen = fed.clone();
    tokio::spawn(async move {
        tokio::spawn(async move { tx.send(seen.load(Relaxed)) });
        let _ = driver.await;
    });
    let at = within(rx).await.unwrap();
    within(async {
        while fed.load(Relaxed) < total {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        at <= FAIR_SHARE + READ_CHUNK,
        "the other task ran only after the driver had read {at} bytes"
    );
}

/// `quiet_keepalive` (frps, issue 21): a peer heard from since the last tick is not pinged; one
/// silent for a whole interval is, and is dropped when it does not answer.
#[tokio::test(start_paused = true)]
async fn quiet_keepalive_pings_only_a_silent_peer() {
    let mut cfg = config(5);
    cfg.quiet_keepalive = true;
    let (mut raw, _incoming, drv) = raw_server(cfg);
    // The peer pings every 4 s for 30 s: we answer each, and send no ping of our own.
    for i in 0..8 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        raw.write_all(&header(TYPE_PING, FLAG_SYN, 0, i))
            .await
            .unwrap();
        assert_eq!(
            read_header(&mut raw).await,
            (TYPE_PING, FLAG_ACK, 0, i),
            "only answers, no ping of ours"
        );
    }
    // Silent from now on: pinged within two intervals, dropped 10 s after an unanswered ping.
    let (ty, flags, _, _) = read_header(&mut raw).await;
    assert_eq!((ty, flags), (TYPE_PING, FLAG_SYN));
    let err = within(drv).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}
