//! The shared-ledger operations on PostgreSQL: each is one statement (most of them one
//! call of a function from `schema.sql`), answered as JSON the manager's types decode.

use super::{PgLedger, pool_error, unavailable};
use crate::events::ReleaseReason;
use crate::invariant::InvariantViolation;
use crate::policy::{Holder, ResourceKind};
use crate::resources::ledger::slot;
use crate::resources::shared::{
    Grant, GrantOutcome, RemoteChange, SharedLedger, SharedTotals, Snapshot,
};
use crate::resources::{Allocation, AllocationFilter, ProcessProbe, ResourceError, Totals};
use serde::Deserialize;
use std::str::FromStr;
use std::sync::atomic::Ordering;

/// PostgreSQL's `bigint` is signed: amounts and limits above `i64::MAX` cannot be stored,
/// and a limit that large is no limit, so limits clamp and amounts are refused.
pub(super) fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn quota_arg(q: Option<u64>) -> i64 {
    q.map_or(-1, big)
}

fn reason_str(r: ReleaseReason) -> &'static str {
    match r {
        ReleaseReason::Released => "released",
        ReleaseReason::Preempted => "preempted",
        ReleaseReason::LeaseExpired => "lease_expired",
        ReleaseReason::OwnerGone => "owner_gone",
    }
}

pub(super) fn parse_reason(s: &str) -> Option<ReleaseReason> {
    Some(match s {
        "released" => ReleaseReason::Released,
        "preempted" => ReleaseReason::Preempted,
        "lease_expired" => ReleaseReason::LeaseExpired,
        "owner_gone" => ReleaseReason::OwnerGone,
        _ => return None,
    })
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<T, ResourceError> {
    serde_json::from_str(text).map_err(|e| ResourceError::Unavailable {
        backend: "postgres".into(),
        reason: format!("unexpected answer to {what}: {e}"),
    })
}

#[derive(Deserialize)]
struct SnapshotRow {
    used: i64,
    count: i64,
    version: i64,
    quota: Option<i64>,
    global_used: i64,
    holders: Vec<Holder>,
}

#[derive(Deserialize)]
struct GrantRow {
    status: String,
    #[serde(default)]
    allocation: Option<Allocation>,
    #[serde(default)]
    preempted: Vec<Allocation>,
    #[serde(default)]
    tenant_used: i64,
    #[serde(default)]
    global_used: i64,
    #[serde(default)]
    used: i64,
    #[serde(default)]
    limit: i64,
    #[serde(default)]
    quota: Option<i64>,
}

#[derive(Deserialize)]
struct Reaped {
    reason: String,
    allocation: Allocation,
}

const ALLOCATION_COLUMNS: &str = "rm_json(a)::text FROM rm_allocations a";

impl PgLedger {
    /// One statement returning one text column, decoded as `T`.
    pub(super) fn one<T: for<'de> Deserialize<'de> + Send + 'static>(
        &self,
        what: &'static str,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Option<T>, ResourceError> {
        let s = self.shared.clone();
        let text: Option<String> = self.run(async move {
            let client = s.pool.get().await.map_err(pool_error)?;
            let stmt = client.prepare_cached(sql).await.map_err(unavailable)?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(Param::as_sql).collect();
            let row = client.query_opt(&stmt, &refs).await.map_err(unavailable)?;
            Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
        })?;
        text.map(|t| decode(what, &t)).transpose()
    }

    /// One statement returning rows of one text column, each decoded as `T`.
    pub(super) fn many<T: for<'de> Deserialize<'de> + Send + 'static>(
        &self,
        what: &'static str,
        sql: String,
        params: Vec<Param>,
    ) -> Result<Vec<T>, ResourceError> {
        let s = self.shared.clone();
        let texts: Vec<String> = self.run(async move {
            let client = s.pool.get().await.map_err(pool_error)?;
            let stmt = client.prepare_cached(&sql).await.map_err(unavailable)?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(Param::as_sql).collect();
            let rows = client.query(&stmt, &refs).await.map_err(unavailable)?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })?;
        texts.iter().map(|t| decode(what, t)).collect()
    }

    pub(super) fn host(&self) -> String {
        self.shared.opts.host_id.clone()
    }

    fn note_global(&self, kind: ResourceKind, used: i64) {
        self.shared.global[slot(kind)].store(used.max(0) as u64, Ordering::Relaxed);
    }

    /// One call of `rm_grant`, with only the tenant's global stripe locked or (`slow`) all.
    fn grant_once(&self, g: &Grant<'_>, slow: bool) -> Result<GrantRow, ResourceError> {
        let r = g.request;
        self.one(
            "rm_grant",
            "SELECT rm_grant($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)::text",
            vec![
                Param::Text(r.tenant.clone()),
                Param::Text(r.kind.as_str().into()),
                Param::Big(big(r.amount)),
                Param::Big(quota_arg(g.default_quota)),
                Param::Big(big(g.global_limit)),
                Param::Big(big(g.elsewhere)),
                Param::Big(g.version.map_or(-1, big)),
                Param::Bigs(g.victims.iter().map(|v| big(*v)).collect()),
                Param::Text(r.owner.clone()),
                Param::Small(r.priority as i16),
                Param::OptBig(r.ttl_ms.map(big)),
                Param::Int(r.pid.map(|p| p as i32)),
                Param::Text(self.host()),
                Param::Bool(slow),
            ],
        )?
        .ok_or_else(|| unavailable("rm_grant answered nothing"))
    }
}

/// An owned statement parameter (the call runs on the ledger's runtime, so the caller's
/// borrows cannot cross into it).
#[derive(Debug, Clone)]
pub(super) enum Param {
    Text(String),
    Big(i64),
    Small(i16),
    Int(Option<i32>),
    OptBig(Option<i64>),
    Bigs(Vec<i64>),
    Bool(bool),
    OptText(Option<String>),
}

impl Param {
    fn as_sql(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Param::Text(v) => v,
            Param::Big(v) => v,
            Param::Small(v) => v,
            Param::Int(v) => v,
            Param::OptBig(v) => v,
            Param::Bigs(v) => v,
            Param::Bool(v) => v,
            Param::OptText(v) => v,
        }
    }
}

fn check_amount(r: &crate::resources::AllocationRequest) -> Result<(), ResourceError> {
    if r.amount > i64::MAX as u64 {
        return Err(ResourceError::InvalidAmount {
            kind: r.kind,
            amount: r.amount,
            reason: format!("larger than the shared ledger can hold ({})", i64::MAX),
        });
    }
    if r.ttl_ms.is_some_and(|t| t > i64::MAX as u64 / 2) {
        return Err(ResourceError::InvalidRequest {
            field: "ttl_ms".into(),
            reason: "longer than the shared ledger can hold".into(),
        });
    }
    Ok(())
}

impl SharedLedger for PgLedger {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn snapshot(
        &self,
        r: &crate::resources::AllocationRequest,
        default_quota: Option<u64>,
        elsewhere: u64,
    ) -> Result<Snapshot, ResourceError> {
        check_amount(r)?;
        let row: SnapshotRow = self
            .one(
                "rm_snapshot",
                "SELECT rm_snapshot($1, $2, $3, $4, $5, $6)::text",
                vec![
                    Param::Text(r.tenant.clone()),
                    Param::Text(r.kind.as_str().into()),
                    Param::Big(big(r.amount)),
                    Param::Small(r.priority as i16),
                    Param::Big(quota_arg(default_quota)),
                    Param::Big(big(elsewhere)),
                ],
            )?
            .ok_or_else(|| unavailable("rm_snapshot answered nothing"))?;
        self.note_global(r.kind, row.global_used);
        Ok(Snapshot {
            tenant: Totals {
                used: row.used.max(0) as u64,
                count: row.count.clamp(0, u32::MAX as i64) as u32,
            },
            version: row.version.max(0) as u64,
            quota: row.quota.map(|q| q.max(0) as u64),
            global_used: row.global_used.max(0) as u64,
            holders: row.holders,
        })
    }

    fn grant(&self, g: &Grant<'_>) -> Result<GrantOutcome, ResourceError> {
        let r = g.request;
        check_amount(r)?;
        // First only the tenant's stripe of the global counter; when the grant does not
        // fit that stripe's share, once more with every stripe locked (schema.sql).
        let mut row = self.grant_once(g, false)?;
        if row.status == "rebalance" {
            row = self.grant_once(g, true)?;
        }
        Ok(match row.status.as_str() {
            "granted" => {
                self.note_global(r.kind, row.global_used);
                GrantOutcome::Granted {
                    allocation: row
                        .allocation
                        .ok_or_else(|| unavailable("rm_grant granted without an allocation"))?,
                    preempted: row.preempted,
                    tenant_used: row.tenant_used.max(0) as u64,
                    global_used: row.global_used.max(0) as u64,
                    quota: row.quota.map(|q| q.max(0) as u64),
                }
            }
            "conflict" => GrantOutcome::Conflict,
            "quota" => GrantOutcome::Quota {
                used: row.used.max(0) as u64,
                limit: row.limit.max(0) as u64,
            },
            "limit" => GrantOutcome::Limit {
                used: row.used.max(0) as u64,
            },
            other => return Err(unavailable(format!("rm_grant answered {other:?}"))),
        })
    }

    fn release(&self, id: u64, reason: ReleaseReason) -> Result<Option<Allocation>, ResourceError> {
        self.one(
            "rm_release",
            "SELECT rm_release($1, $2, $3)::text",
            vec![
                Param::Big(big(id)),
                Param::Text(self.host()),
                Param::Text(reason_str(reason).into()),
            ],
        )
    }

    fn renew(&self, id: u64) -> Result<Option<Allocation>, ResourceError> {
        self.one(
            "renew",
            "UPDATE rm_allocations a SET expires_at = CASE WHEN ttl_ms IS NULL THEN NULL \
               ELSE now() + make_interval(secs => ttl_ms / 1000.0) END \
             WHERE id = $1 RETURNING rm_json(a)::text",
            vec![Param::Big(big(id))],
        )
    }

    fn get(&self, id: u64) -> Result<Option<Allocation>, ResourceError> {
        self.one(
            "get",
            "SELECT rm_json(a)::text FROM rm_allocations a WHERE id = $1",
            vec![Param::Big(big(id))],
        )
    }

    fn list(&self, f: &AllocationFilter) -> Result<Vec<Allocation>, ResourceError> {
        let mut sql = format!("SELECT {ALLOCATION_COLUMNS} WHERE true");
        let mut params = Vec::new();
        for (col, v) in [
            ("tenant", f.tenant.clone()),
            ("kind", f.kind.map(|k| k.as_str().to_string())),
            ("owner", f.owner.clone()),
        ] {
            if let Some(v) = v {
                params.push(Param::Text(v));
                sql.push_str(&format!(" AND {col} = ${}", params.len()));
            }
        }
        sql.push_str(" ORDER BY id");
        self.many("list", sql, params)
    }

    fn totals(&self) -> Result<SharedTotals, ResourceError> {
        #[derive(Deserialize)]
        struct Row {
            tenant: String,
            kind: String,
            used: i64,
            count: i64,
        }
        let rows: Vec<Row> = self.many(
            "totals",
            "SELECT json_build_object('tenant', tenant, 'kind', kind, 'used', used, \
               'count', count)::text FROM rm_usage WHERE count > 0 \
             UNION ALL SELECT json_build_object('tenant', '', 'kind', kind, \
               'used', sum(used), 'count', sum(count))::text FROM rm_global GROUP BY kind"
                .into(),
            Vec::new(),
        )?;
        let mut out = SharedTotals::default();
        for r in rows {
            let Ok(kind) = ResourceKind::from_str(&r.kind) else {
                continue;
            };
            let t = Totals {
                used: r.used.max(0) as u64,
                count: r.count.clamp(0, u32::MAX as i64) as u32,
            };
            if r.tenant.is_empty() {
                out.global[slot(kind)] = t;
                out.allocations += t.count as usize;
                self.note_global(kind, r.used);
            } else {
                out.tenants.push((r.tenant, kind, t));
            }
        }
        out.tenants.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(out)
    }

    fn global_used_cached(&self, kind: ResourceKind) -> u64 {
        self.shared.global[slot(kind)].load(Ordering::Relaxed)
    }

    fn quotas(&self) -> Result<Vec<(String, ResourceKind, u64)>, ResourceError> {
        let rows: Vec<(String, String, i64)> = self.many(
            "quotas",
            "SELECT json_build_array(tenant, kind, lim)::text FROM rm_quotas".into(),
            Vec::new(),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(t, k, l)| Some((t, ResourceKind::from_str(&k).ok()?, l.max(0) as u64)))
            .collect())
    }

    fn set_quota(
        &self,
        tenant: &str,
        kind: ResourceKind,
        limit: Option<u64>,
        seed: bool,
    ) -> Result<Option<u64>, ResourceError> {
        // One statement: the change and its announcement commit together.
        let sql = match (limit, seed) {
            (Some(_), true) => {
                "WITH c AS (INSERT INTO rm_quotas (tenant, kind, lim) VALUES ($1, $2, $3) \
                   ON CONFLICT DO NOTHING RETURNING lim) \
                 SELECT coalesce((SELECT lim FROM c), \
                   (SELECT lim FROM rm_quotas WHERE tenant = $1 AND kind = $2))::text"
            }
            (Some(_), false) => {
                "WITH c AS (INSERT INTO rm_quotas (tenant, kind, lim) VALUES ($1, $2, $3) \
                   ON CONFLICT (tenant, kind) DO UPDATE SET lim = excluded.lim RETURNING lim), \
                 n AS (SELECT rm_announce($4, 'quota', jsonb_build_object('tenant', $1::text, \
                   'kind', $2::text, 'limit', $3::bigint))) \
                 SELECT (SELECT lim FROM c)::text FROM n"
            }
            (None, _) => {
                "WITH c AS (DELETE FROM rm_quotas WHERE tenant = $1 AND kind = $2 AND $3::bigint >= 0), \
                 n AS (SELECT rm_announce($4, 'quota', jsonb_build_object('tenant', $1::text, \
                   'kind', $2::text, 'limit', NULL))) \
                 SELECT NULL::text FROM n"
            }
        };
        let mut params = vec![
            Param::Text(tenant.into()),
            Param::Text(kind.as_str().into()),
            Param::Big(limit.map_or(0, big)),
        ];
        if !(seed && limit.is_some()) {
            params.push(Param::Text(self.host()));
        }
        let v: Option<i64> = self.one("set_quota", sql, params)?;
        Ok(v.map(|l| l.max(0) as u64))
    }

    fn rate_overrides(&self) -> Result<Vec<(String, u32)>, ResourceError> {
        let rows: Vec<(String, i64)> = self.many(
            "rate_overrides",
            "SELECT json_build_array(tenant, requests_per_minute)::text FROM rm_rate_overrides"
                .into(),
            Vec::new(),
        )?;
        Ok(rows
            .into_iter()
            .map(|(t, r)| (t, r.clamp(1, u32::MAX as i64) as u32))
            .collect())
    }

    fn set_rate_override(
        &self,
        tenant: &str,
        per_minute: Option<u32>,
    ) -> Result<(), ResourceError> {
        let sql = match per_minute {
            Some(_) => {
                "WITH c AS (INSERT INTO rm_rate_overrides VALUES ($1, $2::bigint::integer) \
                   ON CONFLICT (tenant) DO UPDATE SET requests_per_minute = excluded.requests_per_minute), \
                 n AS (SELECT rm_announce($3, 'rate', jsonb_build_object('tenant', $1::text, \
                   'per_minute', $2::bigint))) SELECT NULL::text FROM n"
            }
            None => {
                "WITH c AS (DELETE FROM rm_rate_overrides WHERE tenant = $1 AND $2::bigint >= 0), \
                 n AS (SELECT rm_announce($3, 'rate', jsonb_build_object('tenant', $1::text, \
                   'per_minute', NULL))) SELECT NULL::text FROM n"
            }
        };
        let per_minute = per_minute.map_or(0, |p| p.min(i32::MAX as u32) as i64);
        self.one::<serde_json::Value>(
            "set_rate_override",
            sql,
            vec![
                Param::Text(tenant.into()),
                Param::Big(per_minute),
                Param::Text(self.host()),
            ],
        )?;
        Ok(())
    }

    fn reap(
        &self,
        probe: &dyn ProcessProbe,
    ) -> Result<Vec<(Allocation, ReleaseReason)>, ResourceError> {
        let lapse = self.shared.opts.host_lapse.as_millis() as i64;
        let reaped: Vec<Reaped> = self
            .one(
                "rm_reap",
                "SELECT rm_reap($1, $2, 500)::text",
                vec![Param::Text(self.host()), Param::Big(lapse)],
            )?
            .unwrap_or_default();
        let mut out: Vec<(Allocation, ReleaseReason)> = reaped
            .into_iter()
            .filter_map(|r| Some((r.allocation, parse_reason(&r.reason)?)))
            .collect();
        // This host's own pid-bound allocations: only it can see their processes.
        let mine: Vec<(i64, i32)> = self.many(
            "pids",
            "SELECT json_build_array(id, pid)::text FROM rm_allocations \
              WHERE host = $1 AND pid IS NOT NULL"
                .into(),
            vec![Param::Text(self.host())],
        )?;
        for (id, pid) in mine {
            if pid >= 0
                && !probe.is_alive(pid as u32)
                && let Some(a) = self.release(id as u64, ReleaseReason::OwnerGone)?
            {
                out.push((a, ReleaseReason::OwnerGone));
            }
        }
        Ok(out)
    }

    fn repair(&self) -> Result<u64, ResourceError> {
        let n: Option<i64> = self.one("rm_repair", "SELECT rm_repair()::text", Vec::new())?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    fn check(&self) -> Result<(), InvariantViolation> {
        let wrong: Option<i64> = self
            .one(
                "check",
                "WITH truth AS (SELECT tenant, kind, sum(amount)::bigint AS used, \
                   count(*)::bigint AS count FROM rm_allocations GROUP BY tenant, kind), \
                 gtruth AS (SELECT kind, stripe, sum(amount)::bigint AS used, \
                   count(*)::bigint AS count FROM rm_allocations GROUP BY kind, stripe) \
                 SELECT ((SELECT count(*) FROM truth t FULL JOIN rm_usage u \
                   ON u.tenant = t.tenant AND u.kind = t.kind \
                  WHERE coalesce(t.used, 0) <> coalesce(u.used, 0) \
                     OR coalesce(t.count, 0) <> coalesce(u.count, 0)) \
                 + (SELECT count(*) FROM gtruth t FULL JOIN rm_global g \
                   ON g.kind = t.kind AND g.stripe = t.stripe \
                  WHERE coalesce(t.used, 0) <> coalesce(g.used, 0) \
                     OR coalesce(t.count, 0) <> coalesce(g.count, 0)))::text",
                Vec::new(),
            )
            .map_err(|e| InvariantViolation(e.to_string()))?;
        match wrong.unwrap_or(0) {
            0 => Ok(()),
            n => Err(InvariantViolation(format!(
                "{n} counter row(s) of the shared ledger differ from the sums of the live rows"
            ))),
        }
    }

    fn down(&self) -> Option<String> {
        self.shared.down.lock().clone()
    }

    fn live_hosts(&self) -> u64 {
        self.shared.live_hosts.load(Ordering::Relaxed)
    }

    fn take_changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<RemoteChange>> {
        self.shared.changes.lock().take()
    }
}
