//! The admin API's routes, each declared with the [`Access`] it demands (R-B1). Routes are
//! added only through [`Api`], which records the declaration beside the handler; the
//! middleware in `auth.rs` looks it up for every request and refuses a route it cannot find
//! (fail closed), so a route without a declared permission cannot be reached.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};

use super::Shared;
use crate::access::Access;

/// Where the admin API is mounted.
pub const PREFIX: &str = "/api/v1";

/// One declared route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteAccess {
    pub method: Method,
    /// As axum matches it, prefix included: `/api/v1/cards/{no}`.
    pub path: String,
    pub access: Access,
}

/// Every route's declaration, for the middleware and for tests that walk the router.
#[derive(Clone, Debug, Default)]
pub struct AccessTable {
    by_route: HashMap<(Method, String), Access>,
    routes: Vec<RouteAccess>,
}

impl AccessTable {
    pub fn lookup(&self, method: &Method, matched_path: &str) -> Option<Access> {
        // HEAD is answered by the GET handler.
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.by_route
            .get(&(method.clone(), matched_path.to_owned()))
            .copied()
    }

    /// Whether some method is declared on this path (a request with another gets 405).
    pub fn has_path(&self, matched_path: &str) -> bool {
        self.routes.iter().any(|r| r.path == matched_path)
    }

    pub fn routes(&self) -> &[RouteAccess] {
        &self.routes
    }
}

/// A router under construction that cannot take a route without its access.
pub(crate) struct Api {
    router: Router<Arc<Shared>>,
    table: AccessTable,
}

macro_rules! method {
    ($name:ident, $method:expr, $make:ident) => {
        pub fn $name<H, T>(self, path: &str, access: Access, handler: H) -> Api
        where
            H: Handler<T, Arc<Shared>>,
            T: 'static,
        {
            self.add($method, path, access, $make(handler))
        }
    };
}

impl Api {
    pub fn new() -> Api {
        Api {
            router: Router::new(),
            table: AccessTable::default(),
        }
    }

    method!(get, Method::GET, get);
    method!(post, Method::POST, post);
    method!(put, Method::PUT, put);
    method!(delete, Method::DELETE, delete);

    fn add(
        mut self,
        method: Method,
        path: &str,
        access: Access,
        m: MethodRouter<Arc<Shared>>,
    ) -> Api {
        let full = format!("{PREFIX}{path}");
        let key = (method.clone(), full.clone());
        assert!(
            self.table.by_route.insert(key, access).is_none(),
            "route {method} {full} declared twice"
        );
        self.table.routes.push(RouteAccess {
            method,
            path: full,
            access,
        });
        self.router = self.router.route(path, m);
        self
    }

    pub fn merge(mut self, other: Api) -> Api {
        for r in other.table.routes {
            let key = (r.method.clone(), r.path.clone());
            assert!(
                self.table.by_route.insert(key, r.access).is_none(),
                "route {} {} declared twice",
                r.method,
                r.path
            );
            self.table.routes.push(r);
        }
        self.router = self.router.merge(other.router);
        self
    }

    pub fn finish(self) -> (Router<Arc<Shared>>, AccessTable) {
        (self.router, self.table)
    }
}
