#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::collections::HashMap;

use super::*;

fn load(vars: &[(&str, &str)]) -> (Config, Vec<Warning>) {
    let env: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Config::from_env(|name| env.get(name).cloned())
}

fn default_telemetry() -> Telemetry {
    Telemetry {
        enabled: true,
        port: 0,
        max_items: 1000,
        max_bytes: 262_144,
        timeout_ms: 25,
    }
}

fn proxy(enabled: bool, port: u16, upstream: &str) -> RuntimeProxy {
    RuntimeProxy {
        enabled,
        port,
        upstream: upstream.to_owned(),
    }
}

#[test]
fn defaults() {
    let (cfg, warnings) = load(&[]);
    assert_eq!(warnings, []);
    let want = Config {
        http_port: 1203,
        max_records: DEFAULT_MAX_RECORDS,
        max_wait: DEFAULT_MAX_WAIT,
        log_level: Level::Info,
        runtime_api: String::new(),
        telemetry: default_telemetry(),
        metrics: Metrics {
            enabled: true,
            namespace: "InvocationHistory".to_owned(),
        },
        proxy: proxy(false, 9009, ""),
        export: default_export(),
    };
    assert_eq!(cfg, want);
}

fn default_export() -> Export {
    Export {
        bucket: None,
        prefix: "invocation-history/".to_owned(),
        endpoint: None,
        max_invocations: 1000,
        max_bytes: 4 << 20,
        max_age: Duration::from_secs(60),
        logs: DEFAULT_EXPORT_LOGS,
    }
}

#[test]
fn export_settings() {
    let (cfg, warnings) = load(&[
        (ENV_EXPORT_S3_BUCKET, " my-history.bucket-1 "),
        (ENV_EXPORT_S3_PREFIX, "teams/a/"),
        (ENV_EXPORT_S3_ENDPOINT, "http://127.0.0.1:5000"),
        (ENV_EXPORT_MAX_INVOCATIONS, "100"),
        (ENV_EXPORT_MAX_BYTES, "65536"),
        (ENV_EXPORT_MAX_AGE_MS, "5000"),
        (ENV_EXPORT_LOGS, " Platform, function "),
    ]);
    assert_eq!(warnings, []);
    assert_eq!(
        cfg.export,
        Export {
            bucket: Some("my-history.bucket-1".to_owned()),
            prefix: "teams/a/".to_owned(),
            endpoint: Some("http://127.0.0.1:5000".to_owned()),
            max_invocations: 100,
            max_bytes: 65536,
            max_age: Duration::from_secs(5),
            logs: LogStreams {
                platform: true,
                function: true,
                extension: false,
            },
        }
    );
    for bad in ["ab", "My-Bucket", "bucket_name", "-bucket", "bucket-", "a..b", &"b".repeat(64)] {
        let (cfg, warnings) = load(&[(ENV_EXPORT_S3_BUCKET, bad)]);
        assert_eq!(cfg.export.bucket, None, "{bad}");
        assert_eq!(warnings.len(), 1, "{bad}");
        assert_eq!(
            (warnings[0].variable, warnings[0].value.as_str(), warnings[0].default.as_str()),
            (ENV_EXPORT_S3_BUCKET, bad, "no export")
        );
    }
    for (variable, bad) in [
        (ENV_EXPORT_S3_PREFIX, "/rooted/"),
        (ENV_EXPORT_S3_PREFIX, "a\nb"),
        (ENV_EXPORT_MAX_INVOCATIONS, "0"),
        (ENV_EXPORT_MAX_BYTES, "1023"),
        (ENV_EXPORT_MAX_AGE_MS, "999"),
        (ENV_EXPORT_MAX_AGE_MS, "x"),
        (ENV_EXPORT_LOGS, "function,stdout"),
        (ENV_EXPORT_LOGS, "function,,extension"),
    ] {
        let (cfg, warnings) = load(&[(ENV_EXPORT_S3_BUCKET, "bucket"), (variable, bad)]);
        assert_eq!(
            warnings.iter().map(|w| w.variable).collect::<Vec<_>>(),
            [variable],
            "{variable}={bad}"
        );
        assert_eq!(
            cfg.export,
            Export {
                bucket: Some("bucket".to_owned()),
                ..default_export()
            },
            "{variable}={bad}"
        );
    }
}

#[test]
fn export_log_streams_read_back_as_written() {
    assert_eq!(DEFAULT_EXPORT_LOGS.names(), "function,extension");
    assert_eq!(LogStreams::parse("NONE").unwrap(), LogStreams::default());
    assert!(!LogStreams::parse("none").unwrap().any());
    let all = LogStreams::parse("extension,platform,function").unwrap();
    assert_eq!(all.names(), "platform,function,extension");
    assert_eq!(LogStreams::parse(&all.names()).unwrap(), all);
    let err = LogStreams::parse("function,stdout").unwrap_err();
    assert!(err.contains("\"stdout\"") && err.contains("platform, function, extension"), "{err}");
}

#[test]
fn valid_values() {
    let (cfg, warnings) = load(&[
        (ENV_HTTP_PORT, "9001"),
        (ENV_MAX_RECORDS, " 5 "),
        (ENV_MAX_WAIT, "250"),
        (ENV_LOG_LEVEL, "debug"),
        (ENV_RUNTIME_API, "127.0.0.1:9001"),
    ]);
    assert_eq!(warnings, []);
    assert_eq!(
        (cfg.http_port, cfg.max_records, cfg.max_wait, cfg.log_level),
        (9001, 5, Duration::from_millis(250), Level::Debug)
    );
    assert_eq!(cfg.runtime_api, "127.0.0.1:9001");
    assert_eq!(cfg.proxy, proxy(false, 9009, "127.0.0.1:9001"));
}

#[test]
fn an_invalid_value_warns_once_naming_variable_and_value_and_uses_the_default() {
    let long = "n".repeat(256);
    let cases: &[(&str, &str, &str, fn(&Config) -> bool)] = &[
        ("port not a number", ENV_HTTP_PORT, "abc", |c| c.http_port == DEFAULT_HTTP_PORT),
        ("port zero", ENV_HTTP_PORT, "0", |c| c.http_port == DEFAULT_HTTP_PORT),
        ("port too large", ENV_HTTP_PORT, "70000", |c| c.http_port == DEFAULT_HTTP_PORT),
        ("max records negative", ENV_MAX_RECORDS, "-1", |c| {
            c.max_records == DEFAULT_MAX_RECORDS
        }),
        ("max records too large", ENV_MAX_RECORDS, "1000001", |c| {
            c.max_records == DEFAULT_MAX_RECORDS
        }),
        ("max records overflowing", ENV_MAX_RECORDS, "99999999999999999999999", |c| {
            c.max_records == DEFAULT_MAX_RECORDS
        }),
        ("max wait fractional", ENV_MAX_WAIT, "1.5", |c| c.max_wait == DEFAULT_MAX_WAIT),
        ("max wait too large", ENV_MAX_WAIT, "30001", |c| c.max_wait == DEFAULT_MAX_WAIT),
        ("log level unknown", ENV_LOG_LEVEL, "loud", |c| c.log_level == Level::Info),
        ("lambda log level unknown", ENV_LAMBDA_LOG_LEVEL, "verbose", |c| {
            c.log_level == Level::Info
        }),
        ("telemetry switch unknown", ENV_TELEMETRY, "maybe", |c| c.telemetry.enabled),
        ("telemetry port negative", ENV_TELEMETRY_PORT, "-1", |c| c.telemetry.port == 0),
        ("telemetry port is the API port", ENV_TELEMETRY_PORT, "1203", |c| {
            c.telemetry.port == 0
        }),
        ("max items below Lambda's minimum", ENV_TELEMETRY_MAX_ITEMS, "999", |c| {
            c.telemetry.max_items == 1000
        }),
        ("max items above Lambda's maximum", ENV_TELEMETRY_MAX_ITEMS, "10001", |c| {
            c.telemetry.max_items == 1000
        }),
        ("max bytes below Lambda's minimum", ENV_TELEMETRY_MAX_BYTES, "262143", |c| {
            c.telemetry.max_bytes == 262_144
        }),
        ("max bytes above Lambda's maximum", ENV_TELEMETRY_MAX_BYTES, "1048577", |c| {
            c.telemetry.max_bytes == 262_144
        }),
        ("timeout below Lambda's minimum", ENV_TELEMETRY_TIMEOUT_MS, "24", |c| {
            c.telemetry.timeout_ms == 25
        }),
        ("timeout above Lambda's maximum", ENV_TELEMETRY_TIMEOUT_MS, "30001", |c| {
            c.telemetry.timeout_ms == 25
        }),
        ("metrics switch unknown", ENV_METRICS, "sometimes", |c| c.metrics.enabled),
        ("namespace reserved", ENV_METRICS_NAMESPACE, "AWS/Lambda", |c| {
            c.metrics.namespace == "InvocationHistory"
        }),
        ("namespace bad character", ENV_METRICS_NAMESPACE, "a$b", |c| {
            c.metrics.namespace == "InvocationHistory"
        }),
        ("namespace not ASCII", ENV_METRICS_NAMESPACE, "naïve", |c| {
            c.metrics.namespace == "InvocationHistory"
        }),
    ];
    for (name, variable, value, check) in cases {
        let (cfg, warnings) = load(&[(variable, value)]);
        assert_eq!(warnings.len(), 1, "{name}: {warnings:?}");
        assert_eq!((warnings[0].variable, warnings[0].value.as_str()), (*variable, *value), "{name}");
        assert!(!warnings[0].reason.is_empty() && !warnings[0].default.is_empty(), "{name}");
        assert!(check(&cfg), "{name}: {cfg:?}");
    }
    let (cfg, warnings) = load(&[(ENV_METRICS_NAMESPACE, &long)]);
    assert_eq!((warnings.len(), cfg.metrics.namespace.as_str()), (1, "InvocationHistory"));
}

#[test]
fn log_level_precedence() {
    let cases: &[(&[(&str, &str)], Level)] = &[
        (&[(ENV_LAMBDA_LOG_LEVEL, "ERROR")], Level::Error),
        (&[(ENV_LAMBDA_LOG_LEVEL, "ERROR"), (ENV_LOG_LEVEL, "debug")], Level::Debug),
        (&[(ENV_LOG_LEVEL, "TRACE")], Level::Debug),
        (&[(ENV_LOG_LEVEL, "  "), (ENV_LAMBDA_LOG_LEVEL, "warn")], Level::Warn),
    ];
    for (vars, want) in cases {
        let (cfg, warnings) = load(vars);
        assert_eq!((cfg.log_level, warnings.len()), (*want, 0), "{vars:?}");
    }
}

#[test]
fn telemetry_and_metrics_settings() {
    let (cfg, warnings) = load(&[(ENV_TELEMETRY, "off"), (ENV_METRICS, "false")]);
    assert_eq!(warnings, []);
    assert_eq!(
        cfg.telemetry,
        Telemetry {
            enabled: false,
            ..default_telemetry()
        }
    );
    assert!(!cfg.metrics.enabled);

    let (cfg, warnings) = load(&[
        (ENV_TELEMETRY_PORT, "4243"),
        (ENV_TELEMETRY_MAX_ITEMS, "10000"),
        (ENV_TELEMETRY_MAX_BYTES, "1048576"),
        (ENV_TELEMETRY_TIMEOUT_MS, "30000"),
        (ENV_METRICS_NAMESPACE, "Team/History: prod #1"),
    ]);
    assert_eq!(warnings, []);
    assert_eq!(
        cfg.telemetry,
        Telemetry {
            enabled: true,
            port: 4243,
            max_items: 10_000,
            max_bytes: 1_048_576,
            timeout_ms: 30_000
        }
    );
    assert_eq!(cfg.metrics.namespace, "Team/History: prod #1");

    let (cfg, warnings) = load(&[(ENV_TELEMETRY, "ON"), (ENV_METRICS, "Enabled")]);
    assert_eq!((warnings.len(), cfg.telemetry.enabled, cfg.metrics.enabled), (0, true, true));
}

#[test]
fn runtime_proxy_settings() {
    let api = (ENV_RUNTIME_API, "127.0.0.1:9001");
    let on = (ENV_RUNTIME_PROXY, "on");
    let cases: &[(&str, &[(&str, &str)], RuntimeProxy, Option<&str>)] = &[
        (
            "off by default, upstream is the Runtime API",
            &[api],
            proxy(false, 9009, "127.0.0.1:9001"),
            None,
        ),
        (
            "on with a port and a chained upstream",
            &[
                api,
                on,
                (ENV_RUNTIME_PROXY_PORT, "9100"),
                (ENV_RUNTIME_PROXY_UPSTREAM, "127.0.0.1:9200"),
            ],
            proxy(true, 9100, "127.0.0.1:9200"),
            None,
        ),
        (
            "bad switch",
            &[(ENV_RUNTIME_PROXY, "maybe")],
            proxy(false, 9009, ""),
            Some(ENV_RUNTIME_PROXY),
        ),
        (
            "bad port",
            &[(ENV_RUNTIME_PROXY_PORT, "0")],
            proxy(false, 9009, ""),
            Some(ENV_RUNTIME_PROXY_PORT),
        ),
        (
            "port of the local API",
            &[on, (ENV_RUNTIME_PROXY_PORT, "1203")],
            proxy(true, 9009, ""),
            Some(ENV_RUNTIME_PROXY_PORT),
        ),
        (
            "port of the telemetry listener",
            &[on, (ENV_RUNTIME_PROXY_PORT, "9100"), (ENV_TELEMETRY_PORT, "9100")],
            proxy(true, 9009, ""),
            Some(ENV_RUNTIME_PROXY_PORT),
        ),
        (
            "off: a port it would share is no concern",
            &[(ENV_RUNTIME_PROXY_PORT, "1203")],
            proxy(false, 1203, ""),
            None,
        ),
        (
            "off, local API on the default proxy port: quiet",
            &[(ENV_HTTP_PORT, "9009")],
            proxy(false, 9009, ""),
            None,
        ),
        (
            "on, local API on the default proxy port: the proxy stays off",
            &[on, (ENV_HTTP_PORT, "9009")],
            proxy(false, 9009, ""),
            Some(ENV_RUNTIME_PROXY),
        ),
        (
            "on, both ports collide: the proxy stays off",
            &[on, (ENV_HTTP_PORT, "9009"), (ENV_RUNTIME_PROXY_PORT, "9009")],
            proxy(false, 9009, ""),
            Some(ENV_RUNTIME_PROXY),
        ),
        (
            "upstream on the proxy's port on another host is fine",
            &[on, (ENV_RUNTIME_PROXY_UPSTREAM, "10.0.0.1:9009")],
            proxy(true, 9009, "10.0.0.1:9009"),
            None,
        ),
        (
            "upstream without port",
            &[api, (ENV_RUNTIME_PROXY_UPSTREAM, "localhost")],
            proxy(false, 9009, "127.0.0.1:9001"),
            Some(ENV_RUNTIME_PROXY_UPSTREAM),
        ),
        (
            "upstream with a URL",
            &[(ENV_RUNTIME_PROXY_UPSTREAM, "http://127.0.0.1:1/x")],
            proxy(false, 9009, ""),
            Some(ENV_RUNTIME_PROXY_UPSTREAM),
        ),
        (
            "upstream with port 0",
            &[(ENV_RUNTIME_PROXY_UPSTREAM, "127.0.0.1:0")],
            proxy(false, 9009, ""),
            Some(ENV_RUNTIME_PROXY_UPSTREAM),
        ),
    ];
    for (name, vars, want, warning) in cases {
        let (cfg, warnings) = load(vars);
        assert_eq!(&cfg.proxy, want, "{name}");
        assert_eq!(
            warnings.iter().map(|w| w.variable).collect::<Vec<_>>(),
            warning.iter().copied().collect::<Vec<_>>(),
            "{name}"
        );
    }
}

#[test]
fn an_upstream_that_is_the_proxy_itself_is_refused_in_every_spelling() {
    for own in [
        "localhost:9009",
        "LOCALHOST.:9009",
        "127.0.0.1:9009",
        "127.1:9009",
        "127.0.1:9009",
        "2130706433:9009",
        "0x7f000001:9009",
        "0177.0.0.1:9009",
        "127.255.255.254:9009",
        "0.0.0.0:9009",
        "0:9009",
        "[::1]:9009",
        "[::]:9009",
        "[::ffff:127.0.0.1]:9009",
        "[0:0:0:0:0:0:0:1]:9009",
        "app.localhost:9009",
    ] {
        let (cfg, warnings) = load(&[
            (ENV_RUNTIME_API, "127.0.0.1:9001"),
            (ENV_RUNTIME_PROXY, "on"),
            (ENV_RUNTIME_PROXY_UPSTREAM, own),
        ]);
        assert_eq!(cfg.proxy.upstream, "127.0.0.1:9001", "{own}");
        assert_eq!(warnings.len(), 1, "{own}");
        assert_eq!(warnings[0].variable, ENV_RUNTIME_PROXY_UPSTREAM, "{own}");
    }
    for other in [
        "10.0.0.1:9009",
        "127.0.0.1:9010",
        "example.com:9009",
        "[::2]:9009",
        "128.0.0.1:9009",
    ] {
        let (cfg, warnings) = load(&[(ENV_RUNTIME_PROXY, "on"), (ENV_RUNTIME_PROXY_UPSTREAM, other)]);
        assert_eq!((cfg.proxy.upstream.as_str(), warnings.len()), (other, 0), "{other}");
    }
}

#[test]
fn host_port_parsing() {
    assert_eq!(parse_host_port("127.0.0.1:9001"), Ok(("127.0.0.1", 9001)));
    assert_eq!(parse_host_port("[::1]:80"), Ok(("::1", 80)));
    for bad in [
        "",
        ":80",
        "host:",
        "host:+80",
        "::1:80",
        "[::1:80",
        "[nope]:80",
        "a b:80",
        "user@host:80",
        "host:65536",
    ] {
        assert!(parse_host_port(bad).is_err(), "{bad:?}");
    }
}
