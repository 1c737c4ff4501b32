//! Hand-written policy components (WAT), so runtime edge cases need no guest toolchain.
//! Each builder wraps a small core-module body in the component boilerplate: a one-page
//! memory, a bump `cabi_realloc`, and `canon lift` of the exports.

/// The core-module prelude: memory, a bump allocator from 1 KiB up (never freed: these
/// guests live for a few calls), and a return area at 16.
const PRELUDE: &str = r#"
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.add (i32.const 1) (i32.shr_u
          (i32.sub (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
          (i32.const 16)))))))
      (local.get $p))
"#;

/// An eviction policy that misbehaves on request, picked by `bytes-to-free`:
/// 1001 loops forever, 1002 grows memory until the cap, 1003 traps (`unreachable`),
/// 1004 answers `max-count + 1` ids; anything else answers the first event's id when
/// asked for bytes (so it is a valid, if simple-minded, policy), else nothing.
pub(crate) fn eviction_tricky() -> String {
    let body = r#"
    (func (export "configure") (param i64 i32))
    (func (export "observe") (param $ev i32) (param $n i32) (param $bytes i64) (param $max i32)
      (result i32)
      (if (i64.eq (local.get $bytes) (i64.const 1001)) (then (loop $l (br $l))))
      (if (i64.eq (local.get $bytes) (i64.const 1002))
        (then (loop $g (drop (memory.grow (i32.const 16))) (br $g))))
      (if (i64.eq (local.get $bytes) (i64.const 1003)) (then unreachable))
      (if (i64.eq (local.get $bytes) (i64.const 1004))
        (then
          (i32.store (i32.const 16) (i32.const 64))
          (i32.store (i32.const 20) (i32.add (local.get $max) (i32.const 1)))
          (return (i32.const 16))))
      (i32.store (i32.const 16) (local.get $ev))
      (i32.store (i32.const 20)
        (select (i32.const 1) (i32.const 0)
          (i32.and (i64.ne (local.get $bytes) (i64.const 0)) (i32.ge_u (local.get $n) (i32.const 3)))))
      (i32.const 16))
    "#;
    eviction(body)
}

/// An eviction component around a core body exporting `configure` and `observe`.
pub(crate) fn eviction(body: &str) -> String {
    eviction_at(body, "0.2.0")
}

/// [`eviction`] exporting the interface of contract `version` (`0.1.0` for old guests).
pub(crate) fn eviction_at(body: &str, version: &str) -> String {
    format!(
        r#"(component
  (core module $m {PRELUDE} {body})
  (core instance $i (instantiate $m))
  (func $configure (param "capacity-bytes" u64) (param "expected-entries" u32)
    (canon lift (core func $i "configure")))
  (func $observe (param "events" (list u64)) (param "bytes-to-free" u64) (param "max-count" u32)
    (result (list u64))
    (canon lift (core func $i "observe") (memory (core memory $i "memory")) (realloc (core func $i "cabi_realloc"))))
  (instance $e (export "configure" (func $configure)) (export "observe" (func $observe)))
  (export "rmhost:policy/eviction@{version}" (instance $e))
)"#
    )
}

/// The WIT types of the quota interface, as component types.
const QUOTA_TYPES: &str = r#"
  (type $kind' (enum "memory" "cpu" "connections" "requests" "file-handles"))
  (type $level' (enum "normal" "warning" "critical"))
  (type $usage' (record (field "cpu-percent" f32) (field "memory-used-bytes" u64)
    (field "memory-total-bytes" u64) (field "process-rss-bytes" u64)
    (field "connections-active" u32) (field "requests-per-minute" u32)
    (field "load-average-1m" f32) (field "pressure" $level')))
  (type $request' (record (field "tenant" string) (field "owner" string) (field "kind" $kind')
    (field "amount" u64) (field "priority" u8)))
  (type $tstate' (record (field "used" u64) (field "limit" (option u64)) (field "allocations" u32)))
  (type $holder' (record (field "allocation" u64) (field "owner" string) (field "amount" u64)
    (field "priority" u8) (field "age-ms" u64)))
  (type $decision' (variant (case "grant") (case "deny" string) (case "preempt" (list u64))))
"#;

/// A quota policy whose `decide` returns the decision that `init` (core-wasm
/// instructions) lays out at offset 16: discriminant byte, then a (pointer, length) pair.
/// The data segment holds the string "no" at 256 and the u64 999 at 264.
fn quota(init: &str) -> String {
    quota_at(init, "0.2.0")
}

/// [`quota`] exporting the interface of contract `version`.
pub(crate) fn quota_at(init: &str, version: &str) -> String {
    format!(
        r#"(component
  (core module $m {PRELUDE}
    (data (i32.const 256) "no\00\00\00\00\00\00\e7\03\00\00\00\00\00\00")
    (func (export "decide") (param i32) (result i32) {init} (i32.const 16)))
  (core instance $i (instantiate $m))
  {QUOTA_TYPES}
  (func $decide (param "req" $request') (param "tenant" $tstate') (param "system" $usage')
    (param "preemptible" (list $holder')) (result $decision')
    (canon lift (core func $i "decide") (memory (core memory $i "memory")) (realloc (core func $i "cabi_realloc"))))
  (instance $q
    (export "resource-kind" (type $kind')) (export "pressure-level" (type $level'))
    (export "usage" (type $usage')) (export "request" (type $request'))
    (export "tenant-state" (type $tstate')) (export "holder" (type $holder'))
    (export "decision" (type $decision')) (export "decide" (func $decide)))
  (export "rmhost:policy/quota@{version}" (instance $q))
)"#
    )
}

/// A quota policy that denies everything with the reason "no".
pub(crate) fn quota_deny_all() -> String {
    quota(
        "(i32.store8 (i32.const 16) (i32.const 1)) (i32.store (i32.const 20) (i32.const 256)) \
         (i32.store (i32.const 24) (i32.const 2))",
    )
}

/// A quota policy that preempts allocation 999, which is never offered, except for a
/// request of exactly 10 (the smoke call's), which it grants: so it loads, then misbehaves.
/// (`req.amount` sits at offset 24 of the parameter record the host lays out.)
pub(crate) fn quota_preempt_unknown() -> String {
    quota(
        "(if (i64.eq (i64.load offset=24 (local.get 0)) (i64.const 10)) \
         (then (i32.store8 (i32.const 16) (i32.const 0)) (return (i32.const 16)))) \
         (i32.store8 (i32.const 16) (i32.const 2)) (i32.store (i32.const 20) (i32.const 264)) \
         (i32.store (i32.const 24) (i32.const 1))",
    )
}

/// A quota policy that grants everything.
pub(crate) fn quota_grant_all() -> String {
    quota("(i32.store8 (i32.const 16) (i32.const 0))")
}

/// A priority policy ranking every waiter at `enqueued-ms * 2` (a recognisable answer).
pub(crate) fn priority_double() -> String {
    format!(
        r#"(component
  (core module $m {PRELUDE}
    (func (export "rank") (param i32 i32 i32 i64 i32 i32) (result i64)
      (i64.mul (local.get 3) (i64.const 2))))
  (core instance $i (instantiate $m))
  (type $waiter' (record (field "tenant" string) (field "priority" u8)
    (field "enqueued-ms" u64) (field "queue" string)))
  (func $rank (param "w" $waiter') (result s64)
    (canon lift (core func $i "rank") (memory (core memory $i "memory"))
      (realloc (core func $i "cabi_realloc"))))
  (instance $p (export "waiter" (type $waiter')) (export "rank" (func $rank)))
  (export "rmhost:policy/priority@0.2.0" (instance $p))
)"#
    )
}

/// A correct-looking eviction policy that is slow on the host's miss path: asked for up
/// to 8 victims, it spins ~2^27 iterations (tens of ms) before answering nothing.
pub(crate) fn eviction_slow() -> String {
    let body = r#"
    (func (export "configure") (param i64 i32))
    (func (export "observe") (param $ev i32) (param $n i32) (param $bytes i64) (param $max i32)
      (result i32)
      (local $i i32)
      (if (i32.eq (local.get $max) (i32.const 8))
        (then (loop $l
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 134217728))))))
      (i32.store (i32.const 16) (i32.const 64))
      (i32.store (i32.const 20) (i32.const 0))
      (i32.const 16))
    "#;
    eviction(body)
}

/// An eviction policy that, asked for 7777 bytes, answers one "id": the number of u64
/// words it received, so a test sees the event encoding its contract version gets (and
/// answers nothing otherwise, so the smoke call passes).
pub(crate) fn eviction_echo_len(version: &str) -> String {
    let body = r#"
    (func (export "configure") (param i64 i32))
    (func (export "observe") (param $ev i32) (param $n i32) (param $bytes i64) (param $max i32)
      (result i32)
      (i64.store (i32.const 512) (i64.extend_i32_u (local.get $n)))
      (i32.store (i32.const 16) (i32.const 512))
      (i32.store (i32.const 20) (i64.eq (local.get $bytes) (i64.const 7777)))
      (i32.const 16))
    "#;
    eviction_at(body, version)
}
