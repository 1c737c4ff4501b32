//! `OTEL_*` parsing against a fake environment (the real one is never read or changed).

use super::*;
use std::collections::HashMap;

fn read(pairs: &[(&str, &str)]) -> Result<Option<Settings>, OtelError> {
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    settings(&|k| env.get(k).cloned())
}

fn err(pairs: &[(&str, &str)]) -> String {
    match read(pairs) {
        Err(e) => e.to_string(),
        Ok(s) => panic!("{pairs:?} was accepted: {s:?}"),
    }
}

const EP: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");

#[test]
fn off_without_an_endpoint_whatever_else_is_set() {
    assert_eq!(read(&[]).unwrap(), None);
    let others = [
        ("OTEL_SERVICE_NAME", "edge"),
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "  "),
    ];
    assert_eq!(read(&others).unwrap(), None);
}

#[test]
fn on_with_an_endpoint_and_defaults() {
    let s = read(&[EP]).unwrap().expect("on");
    assert_eq!(s.endpoint, "http://127.0.0.1:4317");
    assert_eq!(s.endpoint_var, "OTEL_EXPORTER_OTLP_ENDPOINT");
    assert_eq!(s.service_name, DEFAULT_SERVICE_NAME);
    assert_eq!(s.sampler, SamplerChoice::ParentOn);
}

#[test]
fn the_traces_endpoint_wins_over_the_general_one() {
    let s = read(&[
        EP,
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4317/",
        ),
        ("OTEL_SERVICE_NAME", "edge-7"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
    ])
    .unwrap()
    .expect("on");
    assert_eq!(s.endpoint, "http://collector:4317/");
    assert_eq!(s.endpoint_var, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    assert_eq!(s.service_name, "edge-7");
    assert_eq!(s.sampler, SamplerChoice::ParentRatio(0.25));
}

#[test]
fn disabled_or_exporter_none_turns_an_endpoint_off() {
    assert_eq!(read(&[EP, ("OTEL_SDK_DISABLED", "TRUE")]).unwrap(), None);
    assert_eq!(read(&[EP, ("OTEL_TRACES_EXPORTER", "none")]).unwrap(), None);
    assert!(
        read(&[EP, ("OTEL_SDK_DISABLED", "false")])
            .unwrap()
            .is_some()
    );
}

#[test]
fn bad_values_name_the_variable_even_when_traces_are_off() {
    let cases: [(&[(&str, &str)], &str); 13] = [
        (&[("OTEL_SDK_DISABLED", "yes")], "OTEL_SDK_DISABLED=\"yes\""),
        (
            &[("OTEL_TRACES_EXPORTER", "jaeger")],
            "OTEL_TRACES_EXPORTER",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
            "grpc only",
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "sometimes")],
            "OTEL_TRACES_SAMPLER",
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ],
            "OTEL_TRACES_SAMPLER_ARG=\"1.5\"",
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "NaN"),
            ],
            "ratio from 0 to 1",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4317")],
            "expected an http:// URL",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317")],
            "without TLS",
        ),
        (
            &[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://c:4318/v1/traces",
            )],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TIMEOUT", "18446744073709551615")],
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")],
            "without OTLP compression",
        ),
        (&[("OTEL_EXPORTER_OTLP_INSECURE", "1")], "true or false"),
        (
            &[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=1,oops")],
            "\"oops\" is not key=value",
        ),
    ];
    for (pairs, want) in cases {
        let e = err(pairs);
        assert!(e.contains(want), "{pairs:?}: {e}");
        // The same with an endpoint: still refused, not traced with a default.
        let mut with_ep = pairs.to_vec();
        if !pairs.iter().any(|(k, _)| k.contains("ENDPOINT")) {
            with_ep.push(EP);
            assert!(err(&with_ep).contains(want), "{with_ep:?}");
        }
    }
}

#[test]
fn a_huge_value_is_refused_and_shown_cut_short() {
    let long = "x".repeat(2 << 20);
    let e = err(&[("OTEL_TRACES_SAMPLER", long.as_str())]);
    assert!(e.starts_with("OTEL_TRACES_SAMPLER=\"xxx"), "{}", &e[..80]);
    assert!(e.contains("(2097152 bytes)"), "{}", &e[..200]);
    assert!(e.len() < 400, "{} bytes of error", e.len());
}

#[test]
fn every_sampler_name_parses() {
    for (name, want) in [
        ("always_on", SamplerChoice::AlwaysOn),
        ("ALWAYS_OFF", SamplerChoice::AlwaysOff),
        ("traceidratio", SamplerChoice::Ratio(1.0)),
        ("parentbased_always_on", SamplerChoice::ParentOn),
        ("parentbased_always_off", SamplerChoice::ParentOff),
        ("parentbased_traceidratio", SamplerChoice::ParentRatio(1.0)),
    ] {
        let s = read(&[EP, ("OTEL_TRACES_SAMPLER", name)]).unwrap().unwrap();
        assert_eq!(s.sampler, want, "{name}");
    }
}
