//! An axum router served on a loopback port for the browser to visit. Bind first when the app must know its own
//! origin (Plugboard's `PLUGBOARD_PUBLIC_URL`: the session cookie's CSRF check compares `Origin` with it):
//!
//! ```ignore
//! let bound = BoundSite::bind().await;
//! let app = TestApp::build(db, None, |c| c.public_url = bound.origin().to_string()).await;
//! let site = bound.serve(app.router.clone());
//! browser.open(&site.url("/")).await;
//! ```

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A loopback listener whose origin is known before anything is served.
pub struct BoundSite {
    listener: TcpListener,
    origin: String,
}

impl BoundSite {
    pub async fn bind() -> BoundSite {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        BoundSite {
            listener,
            origin: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Serves `router` until the returned [`Site`] is dropped.
    pub fn serve(self, router: Router) -> Site {
        let task = tokio::spawn(async move {
            let _ = axum::serve(self.listener, router).await;
        });
        Site {
            origin: self.origin,
            task,
        }
    }
}

/// A router being served on loopback; stops when dropped.
pub struct Site {
    origin: String,
    task: JoinHandle<()>,
}

impl Site {
    /// Binds a loopback port and serves `router` there.
    pub async fn serve(router: Router) -> Site {
        BoundSite::bind().await.serve(router)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}
