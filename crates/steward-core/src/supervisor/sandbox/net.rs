//! `network = "steward-only"`: the agent's network namespace and the one
//! endpoint in it, steward's gateway.
//!
//! A new network namespace holds only a loopback interface, down. The box
//! brings it up (one `RTM_NEWLINK` netlink request), binds
//! `127.0.0.1:<gateway port>` and sends the listening socket to steward over
//! the Unix socket steward gave it as stdin (`SCM_RIGHTS`). A socket keeps
//! the namespace it was created in: steward accepts on it from its own
//! namespace and serves the gateway, while the agent connects to
//! `127.0.0.1:<port>` inside its namespace, where nothing else listens and
//! no route leads anywhere else.

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::socket::{AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

/// How long steward waits for the box to send the listener before it gives
/// the run up (the box is a local process that needs milliseconds).
pub const LISTENER_TIMEOUT: Duration = Duration::from_secs(10);

/// `RTM_NEWLINK` (linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
/// `NLM_F_REQUEST | NLM_F_ACK`.
const NLM_F_REQUEST_ACK: u16 = 0x1 | 0x4;
/// `NLMSG_ERROR`: the kernel's acknowledgement (error 0) or error.
const NLMSG_ERROR: u16 = 2;
/// `IFF_UP`.
const IFF_UP: u32 = 0x1;

/// In the box, after `unshare(CLONE_NEWNET)`: `lo` up, the listener bound
/// and sent to steward over stdin.
pub(super) fn open_gateway(port: u16) -> std::io::Result<()> {
    loopback_up().map_err(|e| std::io::Error::other(format!("cannot bring up lo in the agent's namespace: {e}")))?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|e| {
        std::io::Error::other(format!("cannot listen on 127.0.0.1:{port} in the agent's network namespace: {e}"))
    })?;
    let stdin = std::io::stdin();
    let fds = [listener.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    if !control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("cannot build the SCM_RIGHTS message"));
    }
    rustix::net::sendmsg(stdin.as_fd(), &[std::io::IoSlice::new(b"L")], &mut control, rustix::net::SendFlags::empty())
        .map_err(|e| std::io::Error::other(format!("cannot hand the gateway listener to steward: {e}")))?;
    Ok(())
}

/// `ip link set lo up`, as one netlink request: a `nlmsghdr` followed by an
/// `ifinfomsg` for interface index 1 (`lo` is always index 1 in a new
/// namespace) with `IFF_UP` set in flags and change mask.
fn loopback_up() -> std::io::Result<()> {
    let index = nix::net::if_::if_nametoindex("lo")?;
    let socket = nix::sys::socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32_u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    msg.extend_from_slice(&NLM_F_REQUEST_ACK.to_ne_bytes()); // nlmsg_flags
    msg.extend_from_slice(&1_u32.to_ne_bytes()); // nlmsg_seq
    msg.extend_from_slice(&0_u32.to_ne_bytes()); // nlmsg_pid: the kernel
    msg.extend_from_slice(&[0, 0]); // ifi_family AF_UNSPEC, padding
    msg.extend_from_slice(&0_u16.to_ne_bytes()); // ifi_type
    msg.extend_from_slice(&i32::try_from(index).unwrap_or(1).to_ne_bytes()); // ifi_index
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    nix::sys::socket::sendto(socket.as_raw_fd(), &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
    let mut reply = [0_u8; 256];
    let n = nix::sys::socket::recv(socket.as_raw_fd(), &mut reply, MsgFlags::empty())?;
    let kind = reply.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let error = reply.get(16..20).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    match (n >= 20, kind, error) {
        (true, Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (true, Some(NLMSG_ERROR), Some(code)) => Err(std::io::Error::from_raw_os_error(-code)),
        _ => Err(std::io::Error::other("unexpected netlink reply")),
    }
}

/// In steward: waits (blocking, up to [`LISTENER_TIMEOUT`]) for the box to
/// send the gateway listener it opened in the agent's namespace.
pub fn receive_listener(channel: &UnixStream) -> std::io::Result<TcpListener> {
    channel.set_read_timeout(Some(LISTENER_TIMEOUT))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0_u8; 1];
    let received = rustix::net::recvmsg(
        channel.as_fd(),
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    if received.bytes == 0 {
        return Err(std::io::Error::other("the agent's box ended before it opened the gateway in its namespace"));
    }
    for message in control.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            let listener = TcpListener::from(fd);
            listener.set_nonblocking(true)?;
            return Ok(listener);
        }
    }
    Err(std::io::Error::other("the agent's box sent no listener"))
}
