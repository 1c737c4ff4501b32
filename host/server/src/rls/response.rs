//! From rmhost's decisions to a `RateLimitResponse`.
//!
//! rmhost limits with GCRA at N requests per minute with a burst of N, so a status says
//! `requests_per_unit: N, unit: MINUTE`, `limit_remaining` is the burst left, and
//! `duration_until_reset` is how long until the burst is whole again (refused: until the
//! refused cost would fit). The headers follow the IETF RateLimit fields draft
//! (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` in seconds), plus
//! `Retry-After` when over, for the descriptor that binds: the refused one with the longest
//! wait, else the one with the least left.

use super::request::Check;
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::google::protobuf::Duration;
use rmhost_core::resources::RateDecision;

/// Milliseconds until `d`'s burst is whole again (allowed) or its cost fits (refused).
pub fn reset_ms(d: &RateDecision) -> u64 {
    if !d.allowed {
        return d.retry_after_ms;
    }
    let limit = u64::from(d.limit_per_minute.max(1));
    let used = limit.saturating_sub(u64::from(d.remaining));
    // One request's emission interval is 60 s / limit; `used` of them are outstanding.
    (used * 60_000).div_ceil(limit)
}

fn duration(ms: u64) -> Duration {
    Duration {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        // Below 1e9: fits.
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

fn status(check: &Check, d: &RateDecision) -> DescriptorStatus {
    DescriptorStatus {
        code: if d.allowed { Code::Ok } else { Code::OverLimit } as i32,
        current_limit: Some(RateLimit {
            name: format!("tenant {}", check.tenant),
            requests_per_unit: d.limit_per_minute,
            unit: Unit::Minute as i32,
        }),
        limit_remaining: d.remaining,
        duration_until_reset: Some(duration(reset_ms(d))),
        quota: None,
    }
}

fn header(key: &str, value: u64) -> HeaderValue {
    HeaderValue {
        key: key.to_string(),
        value: value.to_string(),
        raw_value: Vec::new(),
    }
}

/// The decision whose numbers the headers carry.
fn binding(decisions: &[RateDecision]) -> Option<&RateDecision> {
    decisions
        .iter()
        .filter(|d| !d.allowed)
        .max_by_key(|d| d.retry_after_ms)
        .or_else(|| decisions.iter().min_by_key(|d| d.remaining))
}

/// The answer to checks whose decisions are `decisions` (same order).
pub fn answer(checks: &[Check], decisions: &[RateDecision]) -> RateLimitResponse {
    let over = decisions.iter().any(|d| !d.allowed);
    let mut headers = Vec::new();
    if let Some(d) = binding(decisions) {
        let reset_s = reset_ms(d).div_ceil(1000);
        headers.push(header("RateLimit-Limit", d.limit_per_minute.into()));
        headers.push(header("RateLimit-Remaining", d.remaining.into()));
        headers.push(header("RateLimit-Reset", reset_s));
        if over {
            headers.push(header("Retry-After", reset_s.max(1)));
        }
    }
    RateLimitResponse {
        overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
        statuses: checks
            .iter()
            .zip(decisions)
            .map(|(c, d)| status(c, d))
            .collect(),
        response_headers_to_add: headers,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool, remaining: u32, retry_after_ms: u64) -> RateDecision {
        RateDecision {
            allowed,
            remaining,
            retry_after_ms,
            limit_per_minute: 60,
        }
    }

    fn check(t: &str) -> Check {
        Check {
            tenant: t.into(),
            cost: 1,
        }
    }

    fn headers(r: &RateLimitResponse) -> Vec<(String, String)> {
        r.response_headers_to_add
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect()
    }

    #[test]
    fn all_under_is_ok_with_the_tightest_descriptor_in_the_headers() {
        let r = answer(
            &[check("a"), check("b")],
            &[decision(true, 50, 0), decision(true, 10, 0)],
        );
        assert_eq!(r.overall_code, Code::Ok as i32);
        assert_eq!(r.statuses.len(), 2);
        let s = &r.statuses[1];
        assert_eq!(s.code, Code::Ok as i32);
        assert_eq!(s.limit_remaining, 10);
        let limit = s.current_limit.as_ref().unwrap();
        assert_eq!(
            (limit.requests_per_unit, limit.unit, limit.name.as_str()),
            (60, Unit::Minute as i32, "tenant b")
        );
        // 50 of 60 used at one per second: 50 s until the burst is whole.
        assert_eq!(s.duration_until_reset, Some(duration(50_000)));
        assert_eq!(
            headers(&r),
            [
                ("RateLimit-Limit".into(), "60".into()),
                ("RateLimit-Remaining".into(), "10".into()),
                ("RateLimit-Reset".into(), "50".into()),
            ]
        );
    }

    #[test]
    fn any_over_is_over_limit_with_retry_after() {
        let r = answer(
            &[check("a"), check("b")],
            &[decision(true, 5, 0), decision(false, 0, 1500)],
        );
        assert_eq!(r.overall_code, Code::OverLimit as i32);
        assert_eq!(r.statuses[0].code, Code::Ok as i32);
        assert_eq!(r.statuses[1].code, Code::OverLimit as i32);
        assert_eq!(
            r.statuses[1].duration_until_reset,
            Some(Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        let h = headers(&r);
        assert!(
            h.contains(&("RateLimit-Remaining".into(), "0".into())),
            "{h:?}"
        );
        assert!(h.contains(&("Retry-After".into(), "2".into())), "{h:?}");
    }
}
