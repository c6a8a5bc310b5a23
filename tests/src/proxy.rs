//! A fault-injecting TCP proxy for the node ↔ gateway link.
//!
//! The node (QEMU's UART0 as a TCP server) is on one side, the gateway (`mend listen`) on the
//! other. The proxy forwards whole frames (bytes up to and including a `0x00` delimiter) and,
//! seeded so that every run is the same, drops some of them, flips bits in some bytes, and cuts
//! the link entirely on request. A frame is judged when its delimiter arrives, so a drop never
//! splits a frame in two.
//!
//! When either side closes, the proxy closes the other too, and waits for the gateway to come
//! back; it connects to the node anew for each gateway connection, retrying while the node is
//! down (QEMU killed and not yet restarted). That is how a restarted node looks to the gateway:
//! the connection drops, and the next one reaches the new node.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// One million: rates are in parts per million.
const PPM: u32 = 1_000_000;

/// What the proxy does to the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// The seed of the proxy's decisions.
    pub seed: u64,
    /// Node-to-gateway frames dropped, in parts per million.
    pub uplink_drop_ppm: u32,
    /// Gateway-to-node frames dropped, in parts per million.
    pub downlink_drop_ppm: u32,
    /// Bytes (either way, delimiters excepted) with one bit flipped, in parts per million.
    pub corrupt_byte_ppm: u32,
}

impl Faults {
    /// A clean link: everything is forwarded as it is.
    pub const CLEAN: Faults = Faults {
        seed: 0,
        uplink_drop_ppm: 0,
        downlink_drop_ppm: 0,
        corrupt_byte_ppm: 0,
    };
}

/// What the proxy did, both ways, over all connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Gateway connections accepted and joined to a node connection.
    pub connections: u64,
    /// Node-to-gateway frames seen.
    pub uplink_frames: u64,
    /// Node-to-gateway frames dropped.
    pub uplink_dropped: u64,
    /// Gateway-to-node frames seen.
    pub downlink_frames: u64,
    /// Gateway-to-node frames dropped.
    pub downlink_dropped: u64,
    /// Bytes with a flipped bit.
    pub corrupted_bytes: u64,
    /// Bytes discarded because the link was cut.
    pub cut_bytes: u64,
}

struct Shared {
    cut: AtomicBool,
    stop: AtomicBool,
    stats: Mutex<ProxyStats>,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut ProxyStats)) {
        f(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// A running proxy: the gateway connects to [`FaultProxy::addr`].
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of the node at `node`.
    pub fn start(node: SocketAddr, faults: Faults) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            stats: Mutex::new(ProxyStats::default()),
        });
        let s = Arc::clone(&shared);
        let thread = thread::spawn(move || accept_loop(&listener, node, faults, &s));
        Ok(Self {
            addr,
            shared,
            thread: Some(thread),
        })
    }

    /// Where the gateway connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the link (`true`: every byte either way is discarded) or restores it.
    pub fn cut(&self, cut: bool) {
        self.shared.cut.store(cut, Ordering::SeqCst);
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        *self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Which way bytes go.
#[derive(Clone, Copy)]
enum Way {
    Up,
    Down,
}

fn accept_loop(listener: &TcpListener, node: SocketAddr, faults: Faults, shared: &Arc<Shared>) {
    let mut joined: u64 = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        let gateway = match listener.accept() {
            Ok((g, _)) => g,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => continue,
        };
        let Some(node) = connect_node(node, shared) else {
            // The node is down: the gateway sees its connection close, and comes back.
            let _ = gateway.shutdown(Shutdown::Both);
            continue;
        };
        joined += 1;
        shared.count(|s| s.connections += 1);
        if join(gateway, node, faults, joined, shared).is_err() {
            continue;
        }
    }
}

/// Connects to the node, retrying for a few seconds while it is down.
fn connect_node(node: SocketAddr, shared: &Shared) -> Option<TcpStream> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) && !shared.stop.load(Ordering::SeqCst) {
        if let Ok(s) = TcpStream::connect_timeout(&node, Duration::from_millis(200)) {
            return Some(s);
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Pumps both ways until either side closes, then closes both.
fn join(
    gateway: TcpStream,
    node: TcpStream,
    faults: Faults,
    connection: u64,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    gateway.set_nonblocking(false)?;
    // A short read timeout lets the pumps notice `stop`.
    for s in [&gateway, &node] {
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        s.set_nodelay(true)?;
    }
    let up = {
        let (from, to, sh) = (node.try_clone()?, gateway.try_clone()?, Arc::clone(shared));
        thread::spawn(move || pump(from, to, Way::Up, faults, connection, &sh))
    };
    let down = {
        let sh = Arc::clone(shared);
        thread::spawn(move || pump(gateway, node, Way::Down, faults, connection, &sh))
    };
    let _ = up.join();
    let _ = down.join();
    Ok(())
}

/// Forwards whole frames from `from` to `to`, with the faults of `way`.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    way: Way,
    faults: Faults,
    connection: u64,
    shared: &Shared,
) {
    let stream = connection * 2 + matches!(way, Way::Down) as u64;
    let mut rng =
        ChaCha8Rng::seed_from_u64(faults.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let drop_ppm = match way {
        Way::Up => faults.uplink_drop_ppm,
        Way::Down => faults.downlink_drop_ppm,
    };
    let mut buf = [0u8; 4096];
    let mut frame: Vec<u8> = Vec::with_capacity(256);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        let chunk = buf.get(..n).unwrap_or_default();
        if shared.cut.load(Ordering::SeqCst) {
            frame.clear();
            shared.count(|s| s.cut_bytes += n as u64);
            continue;
        }
        let mut out: Vec<u8> = Vec::with_capacity(n);
        for &b in chunk {
            frame.push(b);
            if b != 0 {
                continue;
            }
            let dropped = drop_ppm > 0 && rng.next_u32() % PPM < drop_ppm;
            let mut flipped = 0u64;
            if !dropped {
                let body = frame.len() - 1;
                for byte in frame.iter_mut().take(body) {
                    if faults.corrupt_byte_ppm > 0 && rng.next_u32() % PPM < faults.corrupt_byte_ppm
                    {
                        *byte ^= 1 << (rng.next_u32() % 8);
                        flipped += 1;
                    }
                }
                out.extend_from_slice(&frame);
            }
            shared.count(|s| {
                let (seen, lost) = match way {
                    Way::Up => (&mut s.uplink_frames, &mut s.uplink_dropped),
                    Way::Down => (&mut s.downlink_frames, &mut s.downlink_dropped),
                };
                *seen += 1;
                *lost += u64::from(dropped);
                s.corrupted_bytes += flipped;
            });
            frame.clear();
        }
        if !out.is_empty() && to.write_all(&out).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in node: a loopback listener whose accepted connections the test drives.
    fn node() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    fn frames(n: u32) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            // Non-zero bodies of varying length, each ended by the delimiter.
            let len = 3 + (i % 7) as usize;
            v.extend(std::iter::repeat_n((i % 250 + 1) as u8, len));
            v.push(0);
        }
        v
    }

    fn read_until_quiet(s: &mut TcpStream) -> Vec<u8> {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[test]
    fn a_clean_proxy_forwards_both_ways_unchanged() {
        let (l, a) = node();
        let p = FaultProxy::start(a, Faults::CLEAN).unwrap();
        let mut gw = TcpStream::connect(p.addr()).unwrap();
        let (mut n, _) = l.accept().unwrap();
        let up = frames(500);
        n.write_all(&up).unwrap();
        assert_eq!(read_until_quiet(&mut gw), up);
        let down = frames(20);
        gw.write_all(&down).unwrap();
        assert_eq!(read_until_quiet(&mut n), down);
        let s = p.stats();
        assert_eq!((s.uplink_frames, s.downlink_frames), (500, 20));
        assert_eq!((s.uplink_dropped, s.corrupted_bytes), (0, 0));
    }

    #[test]
    fn drops_whole_frames_at_about_the_rate_and_never_splits_one() {
        let (l, a) = node();
        let faults = Faults {
            seed: 7,
            uplink_drop_ppm: 100_000,
            ..Faults::CLEAN
        };
        let p = FaultProxy::start(a, faults).unwrap();
        let mut gw = TcpStream::connect(p.addr()).unwrap();
        let (mut n, _) = l.accept().unwrap();
        let sent = frames(5_000);
        n.write_all(&sent).unwrap();
        let got = read_until_quiet(&mut gw);
        let sent_frames: Vec<&[u8]> = sent.split_inclusive(|b| *b == 0).collect();
        let got_frames: Vec<&[u8]> = got.split_inclusive(|b| *b == 0).collect();
        // Every frame that arrived is one that was sent, in order.
        let mut it = sent_frames.iter();
        for f in &got_frames {
            assert!(it.any(|s| s == f), "a frame that was never sent: {f:?}");
        }
        let lost = sent_frames.len() - got_frames.len();
        assert!((400..=600).contains(&lost), "{lost} of 5000 dropped");
        assert_eq!(p.stats().uplink_dropped, lost as u64);
    }

    #[test]
    fn corrupts_bytes_but_never_a_delimiter() {
        let (l, a) = node();
        let faults = Faults {
            seed: 3,
            corrupt_byte_ppm: 10_000,
            ..Faults::CLEAN
        };
        let p = FaultProxy::start(a, faults).unwrap();
        let mut gw = TcpStream::connect(p.addr()).unwrap();
        let (mut n, _) = l.accept().unwrap();
        let sent = frames(2_000);
        n.write_all(&sent).unwrap();
        let got = read_until_quiet(&mut gw);
        assert_eq!(got.len(), sent.len());
        let differ = sent.iter().zip(&got).filter(|(a, b)| a != b).count() as u64;
        assert!(differ > 0);
        // A flip can turn a byte into 0x00 (then it reads as an extra delimiter), but every
        // delimiter sent still arrives.
        assert!(sent.iter().zip(&got).all(|(s, g)| *s != 0 || *g == 0));
        assert_eq!(p.stats().corrupted_bytes, differ);
    }

    #[test]
    fn a_cut_link_passes_nothing_until_restored() {
        let (l, a) = node();
        let p = FaultProxy::start(a, Faults::CLEAN).unwrap();
        let mut gw = TcpStream::connect(p.addr()).unwrap();
        let (mut n, _) = l.accept().unwrap();
        p.cut(true);
        n.write_all(&frames(50)).unwrap();
        gw.write_all(&frames(5)).unwrap();
        assert!(read_until_quiet(&mut gw).is_empty());
        assert!(read_until_quiet(&mut n).is_empty());
        assert!(p.stats().cut_bytes > 0);
        p.cut(false);
        let after = frames(10);
        n.write_all(&after).unwrap();
        assert_eq!(read_until_quiet(&mut gw), after);
    }

    #[test]
    fn a_node_that_goes_away_closes_the_gateway_side_and_a_new_one_is_reached() {
        let (l, a) = node();
        let p = FaultProxy::start(a, Faults::CLEAN).unwrap();
        let mut gw = TcpStream::connect(p.addr()).unwrap();
        let (n, _) = l.accept().unwrap();
        drop(n);
        // The gateway sees its connection end...
        gw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 16];
        assert!(matches!(gw.read(&mut b), Ok(0) | Err(_)));
        // ...and its next connection reaches the node again.
        let mut gw = TcpStream::connect(p.addr()).unwrap();
        let (mut n, _) = l.accept().unwrap();
        let f = frames(3);
        n.write_all(&f).unwrap();
        assert_eq!(read_until_quiet(&mut gw), f);
        assert_eq!(p.stats().connections, 2);
    }
}
