//! Bindings and cache definitions on PostgreSQL (`rm_bindings`, `rm_caches`). Each change
//! and its announcement are one statement, so they commit together and another host never
//! hears of a change that did not happen.

use super::PgLedger;
use super::ops::{Param, big};
use crate::resources::{CacheDef, ResourceError, SharedCatalog, StoredBinding};
use serde::Deserialize;

#[derive(Deserialize)]
struct BindingRow {
    tenant: String,
    kind: crate::policy::PolicyKind,
    policy: String,
}

#[derive(Deserialize)]
struct CacheRow {
    name: String,
    tenant: String,
    capacity_bytes: i64,
    policy: Option<String>,
}

/// `''` stores the default binding: no tenant can be named `''` (names are validated).
fn tenant_key(t: &Option<String>) -> String {
    t.clone().unwrap_or_default()
}

impl SharedCatalog for PgLedger {
    fn bindings(&self) -> Result<Vec<StoredBinding>, ResourceError> {
        let rows: Vec<BindingRow> = self.many(
            "bindings",
            "SELECT json_build_object('tenant', tenant, 'kind', kind, 'policy', policy)::text \
               FROM rm_bindings ORDER BY tenant, kind"
                .into(),
            Vec::new(),
        )?;
        Ok(rows
            .into_iter()
            .map(|r| StoredBinding {
                tenant: (!r.tenant.is_empty()).then_some(r.tenant),
                kind: r.kind,
                policy: Some(r.policy),
            })
            .collect())
    }

    fn set_binding(&self, b: &StoredBinding, seed: bool) -> Result<Option<String>, ResourceError> {
        // Each statement answers the stored policy as a JSON string (NULL: none).
        let sql = match (&b.policy, seed) {
            (Some(_), true) => {
                "WITH c AS (INSERT INTO rm_bindings (tenant, kind, policy) VALUES ($1, $2, $3) \
                   ON CONFLICT DO NOTHING RETURNING policy) \
                 SELECT to_json(coalesce((SELECT policy FROM c), \
                   (SELECT policy FROM rm_bindings WHERE tenant = $1 AND kind = $2)))::text"
            }
            (Some(_), false) => {
                "WITH c AS (INSERT INTO rm_bindings (tenant, kind, policy) VALUES ($1, $2, $3) \
                   ON CONFLICT (tenant, kind) DO UPDATE SET policy = excluded.policy \
                   RETURNING policy), \
                 n AS (SELECT rm_announce($4, 'binding', jsonb_build_object( \
                   'tenant', nullif($1, ''), 'kind', $2::text, 'policy', $3::text))) \
                 SELECT to_json((SELECT policy FROM c))::text FROM n"
            }
            (None, _) => {
                "WITH c AS (DELETE FROM rm_bindings WHERE tenant = $1 AND kind = $2 \
                   AND $3::text IS NULL), \
                 n AS (SELECT rm_announce($4, 'binding', jsonb_build_object( \
                   'tenant', nullif($1, ''), 'kind', $2::text, 'policy', NULL))) \
                 SELECT NULL::text FROM n"
            }
        };
        let mut params = vec![
            Param::Text(tenant_key(&b.tenant)),
            Param::Text(b.kind.as_str().into()),
            Param::OptText(b.policy.clone()),
        ];
        if !(seed && b.policy.is_some()) {
            params.push(Param::Text(self.host()));
        }
        self.one("set_binding", sql, params)
    }

    fn cache_defs(&self) -> Result<Vec<CacheDef>, ResourceError> {
        let rows: Vec<CacheRow> = self.many(
            "cache_defs",
            "SELECT json_build_object('name', name, 'tenant', tenant, \
               'capacity_bytes', capacity_bytes, 'policy', policy)::text \
               FROM rm_caches ORDER BY name"
                .into(),
            Vec::new(),
        )?;
        Ok(rows
            .into_iter()
            .map(|r| CacheDef {
                name: r.name,
                tenant: r.tenant,
                capacity_bytes: r.capacity_bytes.max(0) as u64,
                policy: r.policy,
            })
            .collect())
    }

    fn put_cache_def(&self, d: &CacheDef) -> Result<(), ResourceError> {
        if d.capacity_bytes == 0 || d.capacity_bytes > i64::MAX as u64 {
            return Err(ResourceError::InvalidRequest {
                field: "capacity_bytes".into(),
                reason: format!(
                    "must be between 1 and {} bytes on the shared ledger",
                    i64::MAX
                ),
            });
        }
        let _: Option<String> = self.one(
            "put_cache_def",
            "WITH c AS (INSERT INTO rm_caches (name, tenant, capacity_bytes, policy) \
               VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE \
               SET tenant = excluded.tenant, capacity_bytes = excluded.capacity_bytes, \
                   policy = excluded.policy RETURNING 1), \
             n AS (SELECT rm_announce($5, 'cache', jsonb_build_object('name', $1::text, \
               'def', jsonb_build_object('name', $1::text, 'tenant', $2::text, \
               'capacity_bytes', $3::bigint, 'policy', $4::text)))) \
             SELECT NULL::text FROM n, c",
            vec![
                Param::Text(d.name.clone()),
                Param::Text(d.tenant.clone()),
                Param::Big(big(d.capacity_bytes)),
                Param::OptText(d.policy.clone()),
                Param::Text(self.host()),
            ],
        )?;
        Ok(())
    }

    fn remove_cache_def(&self, name: &str) -> Result<(), ResourceError> {
        let _: Option<String> = self.one(
            "remove_cache_def",
            "WITH c AS (DELETE FROM rm_caches WHERE name = $1 RETURNING 1), \
             n AS (SELECT rm_announce($2, 'cache', jsonb_build_object('name', $1::text, \
               'def', NULL)) FROM c) \
             SELECT NULL::text FROM n",
            vec![Param::Text(name.into()), Param::Text(self.host())],
        )?;
        Ok(())
    }
}
