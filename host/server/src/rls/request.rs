//! From a `RateLimitRequest` to the checks rmhost makes: one (tenant, cost) per descriptor.
//!
//! Refused with a message naming the descriptor and field (INVALID_ARGUMENT): an empty or
//! foreign domain, no descriptors (or more than [`MAX_DESCRIPTORS`]), a descriptor without
//! the tenant entry or with two, a cost beyond `u32::MAX` (the limiter's whole range; the
//! descriptor-level `hits_addend` is a u64), a refund (`is_negative_hits`), and a limit
//! override (rmhost's limits are the tenants', set in its config or API, so an override
//! silently ignored would be a limit that is not enforced).

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;

/// Descriptors one request may carry (each is a limiter round trip).
pub const MAX_DESCRIPTORS: usize = 64;

/// One check: `cost` requests of `tenant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The tenant the descriptor names.
    pub tenant: String,
    /// What the check counts, at least 1.
    pub cost: u32,
}

/// Why a request cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No domain.
    #[error("domain is empty: Envoy's rate-limit filter must name one")]
    NoDomain,
    /// Not the domain `[grpc] domain` serves.
    #[error("domain {got:?} is not served here ([grpc] domain = {served:?})")]
    ForeignDomain {
        /// The request's.
        got: String,
        /// The configured one.
        served: String,
    },
    /// No descriptors, or too many.
    #[error("a request needs 1 to {MAX_DESCRIPTORS} descriptors, not {0}")]
    DescriptorCount(usize),
    /// A descriptor has no tenant entry.
    #[error("descriptors[{index}] has no entry with key {key:?} (the tenant; [grpc] tenant_key)")]
    NoTenant {
        /// Which descriptor.
        index: usize,
        /// The key looked for.
        key: String,
    },
    /// A descriptor names two tenants.
    #[error("descriptors[{index}] has more than one entry with key {key:?}")]
    TwoTenants {
        /// Which descriptor.
        index: usize,
        /// The key.
        key: String,
    },
    /// A cost the limiter cannot take.
    #[error(
        "descriptors[{index}].hits_addend {value} is more than {max}, the most one check can cost",
        max = u32::MAX
    )]
    CostTooLarge {
        /// Which descriptor.
        index: usize,
        /// The cost asked for.
        value: u64,
    },
    /// A refund.
    #[error(
        "descriptors[{index}].is_negative_hits: refunds are not supported; a check only counts"
    )]
    NegativeHits {
        /// Which descriptor.
        index: usize,
    },
    /// A limit override.
    #[error(
        "descriptors[{index}].limit: overrides are not supported; a tenant's limit is its \
         requests_per_minute ([tenants.NAME] or PUT /v1/tenants/NAME/quotas)"
    )]
    LimitOverride {
        /// Which descriptor.
        index: usize,
    },
}

/// The checks `req` asks for, in descriptor order.
pub fn checks(
    req: &RateLimitRequest,
    tenant_key: &str,
    domain: Option<&str>,
) -> Result<Vec<Check>, RequestError> {
    if req.domain.is_empty() {
        return Err(RequestError::NoDomain);
    }
    if let Some(served) = domain
        && served != req.domain
    {
        return Err(RequestError::ForeignDomain {
            got: req.domain.clone(),
            served: served.to_string(),
        });
    }
    let n = req.descriptors.len();
    if n == 0 || n > MAX_DESCRIPTORS {
        return Err(RequestError::DescriptorCount(n));
    }
    req.descriptors
        .iter()
        .enumerate()
        .map(|(index, d)| {
            let mut tenants = d.entries.iter().filter(|e| e.key == tenant_key);
            let tenant = tenants.next().ok_or_else(|| RequestError::NoTenant {
                index,
                key: tenant_key.to_string(),
            })?;
            if tenants.next().is_some() {
                return Err(RequestError::TwoTenants {
                    index,
                    key: tenant_key.to_string(),
                });
            }
            if d.is_negative_hits {
                return Err(RequestError::NegativeHits { index });
            }
            if d.limit.is_some() {
                return Err(RequestError::LimitOverride { index });
            }
            // The descriptor's own hits_addend overrides the request's (Envoy's rule).
            let asked = d
                .hits_addend
                .as_ref()
                .map_or(u64::from(req.hits_addend), |h| h.value);
            let cost = u32::try_from(asked)
                .map_err(|_| RequestError::CostTooLarge {
                    index,
                    value: asked,
                })?
                .max(1);
            Ok(Check {
                tenant: tenant.value.clone(),
                cost,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
        Entry, RateLimitOverride,
    };
    use envoy_types::pb::google::protobuf::UInt64Value;

    fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn request(descriptors: Vec<RateLimitDescriptor>, hits: u32) -> RateLimitRequest {
        RateLimitRequest {
            domain: "edge".into(),
            descriptors,
            hits_addend: hits,
        }
    }

    #[test]
    fn tenant_and_cost_come_from_each_descriptor() {
        let mut second = descriptor(&[("path", "/x"), ("tenant", "beta")]);
        second.hits_addend = Some(UInt64Value { value: 7 });
        let req = request(vec![descriptor(&[("tenant", "acme")]), second], 0);
        let got = checks(&req, "tenant", None).unwrap();
        assert_eq!(
            got,
            vec![
                Check {
                    tenant: "acme".into(),
                    cost: 1
                },
                Check {
                    tenant: "beta".into(),
                    cost: 7
                }
            ]
        );
        // The request's hits_addend applies where the descriptor has none.
        let req = request(vec![descriptor(&[("org", "acme")])], 3);
        assert_eq!(checks(&req, "org", Some("edge")).unwrap()[0].cost, 3);
    }

    #[test]
    fn bad_requests_name_what_is_wrong() {
        let one = |d: RateLimitDescriptor| request(vec![d], 0);
        let err = |req: &RateLimitRequest| checks(req, "tenant", Some("edge")).unwrap_err();

        let mut req = one(descriptor(&[("tenant", "a")]));
        req.domain.clear();
        assert_eq!(err(&req), RequestError::NoDomain);
        req.domain = "other".into();
        assert!(err(&req).to_string().contains("\"other\""));
        assert_eq!(err(&request(vec![], 0)), RequestError::DescriptorCount(0));
        let many = vec![descriptor(&[("tenant", "a")]); MAX_DESCRIPTORS + 1];
        assert!(matches!(
            err(&request(many, 0)),
            RequestError::DescriptorCount(_)
        ));
        let msg = err(&one(descriptor(&[("path", "/")]))).to_string();
        assert!(
            msg.contains("descriptors[0]") && msg.contains("\"tenant\""),
            "{msg}"
        );
        assert!(matches!(
            err(&one(descriptor(&[("tenant", "a"), ("tenant", "b")]))),
            RequestError::TwoTenants { .. }
        ));

        let mut d = descriptor(&[("tenant", "a")]);
        d.hits_addend = Some(UInt64Value {
            value: u64::from(u32::MAX) + 1,
        });
        let msg = err(&one(d.clone())).to_string();
        assert!(
            msg.contains("4294967296") && msg.contains("hits_addend"),
            "{msg}"
        );
        // u32::MAX itself is a cost the limiter takes (and refuses as over any limit).
        d.hits_addend = Some(UInt64Value {
            value: u64::from(u32::MAX),
        });
        assert_eq!(
            checks(&one(d.clone()), "tenant", None).unwrap()[0].cost,
            u32::MAX
        );
        d.hits_addend = None;
        d.is_negative_hits = true;
        assert_eq!(
            err(&one(d.clone())),
            RequestError::NegativeHits { index: 0 }
        );
        d.is_negative_hits = false;
        d.limit = Some(RateLimitOverride::default());
        assert_eq!(err(&one(d)), RequestError::LimitOverride { index: 0 });
    }
}
