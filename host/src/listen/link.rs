//! The byte pipe to the node: a TCP connection (QEMU's UART as a server socket, or a serial
//! server) or a local serial port, both read with a short timeout so the gateway keeps its
//! timers while the node is quiet.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Where the node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP server that carries the UART's bytes both ways (`HOST:PORT`).
    Tcp(String),
    /// A serial port and its baud rate.
    Serial {
        /// The device (`/dev/ttyUSB0`).
        path: PathBuf,
        /// Bits per second.
        baud: u32,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp {addr}"),
            Self::Serial { path, baud } => write!(f, "serial {} at {baud} baud", path.display()),
        }
    }
}

/// An open link: bytes in and out.
pub trait Conn: Read + Write + Send {}

impl<T: Read + Write + Send> Conn for T {}

/// What one read from the link gave.
#[derive(Debug)]
pub enum Got {
    /// This many bytes.
    Bytes(usize),
    /// Nothing within the timeout.
    Quiet,
    /// The other end closed the link.
    Closed,
}

/// Opens the link; reads wait at most `poll` before they report [`Got::Quiet`].
pub fn connect(endpoint: &Endpoint, poll: Duration) -> io::Result<Box<dyn Conn>> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            for a in addr.to_socket_addrs()? {
                match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
                    Ok(s) => {
                        s.set_read_timeout(Some(poll))?;
                        s.set_write_timeout(Some(Duration::from_secs(2)))?;
                        s.set_nodelay(true)?;
                        return Ok(Box::new(s));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        Endpoint::Serial { path, baud } => {
            let port = serialport::new(path.to_string_lossy(), *baud)
                .timeout(poll)
                .open()
                .map_err(io::Error::from)?;
            Ok(Box::new(port))
        }
    }
}

/// Reads what the link has, telling a quiet link from a closed one.
pub fn read(conn: &mut dyn Conn, buf: &mut [u8]) -> io::Result<Got> {
    loop {
        return match conn.read(buf) {
            Ok(0) => Ok(Got::Closed),
            Ok(n) => Ok(Got::Bytes(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(Got::Quiet)
            }
            Err(e) => Err(e),
        };
    }
}
