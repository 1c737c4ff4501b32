//! The rate-limit service's listener with the bound the HTTP API has (`daemon/listen.rs`):
//! at most `[grpc] max_connections` open connections. One more is closed at accept (and
//! counted, `rmhost_grpc_connections_refused_total`), so a client opening thousands
//! cannot exhaust the daemon's descriptors; calls per connection are bounded separately
//! by HTTP/2's `MAX_CONCURRENT_STREAMS` (`[grpc] max_concurrent_streams`, set on the
//! server builder).

use futures::Stream;
use rmhost_core::telemetry::Telemetry;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// An accepted connection holding one of the cap's permits until it is dropped (when
/// tonic is done with the connection).
#[derive(Debug)]
pub struct CappedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for CappedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The connections accepted on `listener`, at most `max` open at once; the ones over the
/// cap are closed at once and counted in `telemetry`. Accept errors (EMFILE and friends)
/// back off instead of spinning or ending the server.
pub fn incoming(
    listener: TcpListener,
    max: u32,
    telemetry: Telemetry,
) -> impl Stream<Item = io::Result<CappedStream>> + Send + 'static {
    let permits = Arc::new(Semaphore::new(max as usize));
    futures::stream::unfold(
        (listener, permits, telemetry),
        |(listener, permits, telemetry)| async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _peer)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "gRPC accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    telemetry.grpc_connection_refused();
                    tracing::debug!("gRPC connection refused: [grpc] max_connections open");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let capped = CappedStream {
                    stream,
                    _permit: permit,
                };
                return Some((Ok(capped), (listener, permits, telemetry)));
            }
        },
    )
}
