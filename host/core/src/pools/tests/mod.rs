//! Pool tests, one behaviour per file. All but `queue_order` and `settings` use real
//! servers: Postgres at `RMHOST_TEST_PG` and Redis at `RMHOST_TEST_REDIS` (loopback
//! defaults); they fail, never skip, when a server is missing.

mod support;

mod acquire_timeout;
mod cancel;
mod killed_backends;
mod lifetime;
mod limits;
mod priority;
mod queue_order;
mod redis_restart;
mod settings;
mod warm_idle_shrink;
