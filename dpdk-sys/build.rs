//! Finds DPDK (pkg-config `libdpdk`), the driver-SDK headers and, when
//! available, the EAL private headers; generates bindings with bindgen and
//! compiles the C shim that exports DPDK's `static inline` fast path.
//!
//! Where things come from, in order:
//! - DPDK itself: `pkg-config libdpdk` (set `PKG_CONFIG_PATH` for a DPDK built
//!   from source).
//! - driver-SDK headers (`bus_driver.h`, `dev_driver.h`, `ethdev_driver.h`):
//!   `$RTE_SDK_INCLUDE`, else `$RTE_SDK_SRC` (a DPDK source tree), else the
//!   pkg-config include dirs (DPDK built with `-Denable_driver_sdk=true`), else
//!   `<workspace>/.sdk/dpdk-<version>/include` (made by `scripts/setup.sh`).
//! - EAL private headers (`malloc_heap.h`, `malloc_elem.h`):
//!   `$RTE_EAL_PRIVATE_INCLUDE`, else `$RTE_SDK_SRC/lib/eal/common`, else
//!   `<workspace>/.sdk/dpdk-<version>/private`. Optional: without them the
//!   shim is built without `dpdk_sys_heap_grow` (cfg `dpdk_eal_private`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn pkg_config(args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("libdpdk")
        .output()
        .unwrap_or_else(|e| panic!("cannot run pkg-config ({e}); run scripts/setup.sh"));
    if !out.status.success() {
        panic!(
            "pkg-config libdpdk failed: {}\nInstall libdpdk-dev (scripts/setup.sh) or set PKG_CONFIG_PATH \
             to the directory holding the libdpdk.pc of a DPDK built from source.",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("pkg-config output is not UTF-8")
}

fn has_all(dir: &Path, files: &[&str]) -> bool {
    files.iter().all(|f| dir.join(f).is_file())
}

/// Releases whose API changes the code handles (`dpdk_since`): 23.03
/// telemetry's `_uint` adders (`_u64` gone in 25.11); 24.03 ptypes with a
/// count; 24.11 ...; 25.11 per-queue stats out of `rte_eth_stats`.
const CHANGES: &[&str] = &["23.03", "24.03", "24.07", "24.11", "25.07", "25.11"];

const SDK_HEADERS: &[&str] = &["bus_driver.h", "dev_driver.h", "ethdev_driver.h"];
const PRIVATE_HEADERS: &[&str] = &["malloc_heap.h", "malloc_elem.h"];

fn main() {
    for var in [
        "RTE_SDK_INCLUDE",
        "RTE_SDK_SRC",
        "RTE_EAL_PRIVATE_INCLUDE",
        "PKG_CONFIG_PATH",
        "DPDK_SYS_CLANG_ARGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rustc-check-cfg=cfg(dpdk_eal_private)");
    println!("cargo:rustc-check-cfg=cfg(dpdk_sdk)");
    println!(
        "cargo:rustc-check-cfg=cfg(dpdk_since, values({}))",
        CHANGES
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest.parent().unwrap().to_path_buf();
    let version = pkg_config(&["--modversion"]).trim().to_string();
    // `#[cfg(dpdk_since = "YY.MM")]`: code for DPDK YY.MM and later.
    for c in CHANGES {
        if release(&version) >= release(c) {
            println!("cargo:rustc-cfg=dpdk_since=\"{c}\"");
        }
    }
    let cflags = pkg_config(&["--cflags"]);
    let libs = pkg_config(&["--libs"]);

    let mut include_dirs: Vec<PathBuf> = Vec::new();
    let mut defines_and_flags: Vec<String> = Vec::new();
    let mut tokens = cflags.split_whitespace().peekable();
    while let Some(tok) = tokens.next() {
        if let Some(dir) = tok.strip_prefix("-I") {
            include_dirs.push(PathBuf::from(dir));
        } else if tok == "-include" {
            if let Some(file) = tokens.next() {
                defines_and_flags.push("-include".into());
                defines_and_flags.push(file.into());
            }
        } else {
            defines_and_flags.push(tok.into());
        }
    }

    let local_sdk = workspace.join(".sdk").join(format!("dpdk-{version}"));
    let src = env::var_os("RTE_SDK_SRC").map(PathBuf::from);

    // The driver SDK only for the drivers (feature `driver-sdk`): the
    // proxy needs DPDK's public API alone, so it builds against any
    // packaged DPDK (Debian's -dev packages install no SDK headers).
    let want_sdk = env::var_os("CARGO_FEATURE_DRIVER_SDK").is_some();
    let sdk_dirs: Vec<PathBuf> = if !want_sdk {
        Vec::new()
    } else if let Some(dir) = env::var_os("RTE_SDK_INCLUDE") {
        vec![PathBuf::from(dir)]
    } else if let Some(src) = &src {
        [
            "lib/eal/include",
            "lib/ethdev",
            "lib/mempool",
            "drivers/bus/vdev",
        ]
        .iter()
        .map(|d| src.join(d))
        .collect()
    } else if include_dirs.iter().any(|d| has_all(d, SDK_HEADERS)) {
        Vec::new()
    } else {
        vec![local_sdk.join("include")]
    };
    let sdk_found = SDK_HEADERS.iter().all(|h| {
        sdk_dirs
            .iter()
            .chain(include_dirs.iter())
            .any(|d| d.join(h).is_file())
    });
    if want_sdk && !sdk_found {
        panic!(
            "DPDK {version} driver-SDK headers ({}) not found in {:?}.\n\
             Run scripts/setup.sh (extracts them from the Debian source package), or set \
             RTE_SDK_INCLUDE=<dir> / RTE_SDK_SRC=<dpdk source tree>, or build DPDK with \
             -Denable_driver_sdk=true.",
            SDK_HEADERS.join(", "),
            sdk_dirs
        );
    }
    if want_sdk {
        println!("cargo:rustc-cfg=dpdk_sdk");
        defines_and_flags.push("-DDPDK_SYS_SDK".into());
    }

    let private_dir = env::var_os("RTE_EAL_PRIVATE_INCLUDE")
        .map(PathBuf::from)
        .or_else(|| src.as_ref().map(|s| s.join("lib/eal/common")))
        .unwrap_or_else(|| local_sdk.join("private"));
    // Only the guest's bus grows the heap: with the drivers.
    let have_private = want_sdk && has_all(&private_dir, PRIVATE_HEADERS);
    if have_private {
        println!("cargo:rustc-cfg=dpdk_eal_private");
    } else if want_sdk {
        println!(
            "cargo:warning=EAL private headers not found in {}: guests will need real memory (-m) for their heap",
            private_dir.display()
        );
    }

    let all_includes: Vec<PathBuf> = sdk_dirs
        .iter()
        .chain(include_dirs.iter())
        .cloned()
        .collect();
    let extra_clang: Vec<String> = env::var("DPDK_SYS_CLANG_ARGS")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();

    // --- C shim: static inline fast path, layout probe, heap growth --------
    let mut build = cc::Build::new();
    build
        .file(manifest.join("csrc/shim.c"))
        .file(generate_layout_probe(
            &manifest.join("csrc/layout.list"),
            &PathBuf::from(env::var("OUT_DIR").unwrap()),
            want_sdk,
            release(&version),
        ))
        .include(manifest.join("csrc"))
        .define("ALLOW_EXPERIMENTAL_API", None)
        .define("ALLOW_INTERNAL_API", None)
        .flag_if_supported("-Wno-deprecated-declarations")
        .opt_level(3)
        .pic(true)
        .warnings(true);
    for d in &all_includes {
        build.include(d);
    }
    for f in &defines_and_flags {
        build.flag(f);
    }
    if have_private {
        build
            .file(manifest.join("csrc/heap_grow.c"))
            .include(&private_dir);
    }
    build.compile("dpdk_sys_shim");

    // --- link against the shared DPDK libraries ---------------------------
    for tok in libs.split_whitespace() {
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            if lib.starts_with("rte_") {
                println!("cargo:rustc-link-lib=dylib={lib}");
            }
        }
    }

    // The net_shm vdev registers with the vdev bus, a driver library that
    // `pkg-config --libs libdpdk` does not list (apps such as OVS do not
    // link it either: the plugin must pull it in).
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");

    // --- bindings ------------------------------------------------------------
    let mut builder = bindgen::Builder::default()
        .header(manifest.join("csrc/wrapper.h").to_string_lossy())
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .clang_arg("-DALLOW_INTERNAL_API")
        .clang_arg(format!("-I{}", manifest.join("csrc").display()))
        .allowlist_function("rte_.*|dpdk_sys_.*|eth_.*")
        .allowlist_type("rte_.*|eth_.*|dpdk_sys_.*")
        .allowlist_var("RTE_.*|rte_.*|ETH_.*|SOCKET_ID_ANY|DPDK_SYS_.*")
        .blocklist_type("max_align_t")
        // Declared in src/mbuf.rs: one spelling for every DPDK release.
        .blocklist_type("rte_mbuf")
        // packed protocol headers with aligned members: rustc cannot express them
        .opaque_type(
            "rte_l2tpv2_.*|rte_gtp_.*|rte_flow_item_gtp.*|rte_flow_item_l2tpv2.*|rte_arp_.*",
        )
        .blocklist_function("rte_.*_trace_.*")
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .size_t_is_usize(true)
        .clang_macro_fallback()
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for d in &all_includes {
        builder = builder.clang_arg(format!("-I{}", d.display()));
    }
    for f in defines_and_flags.iter().chain(extra_clang.iter()) {
        builder = builder.clang_arg(f);
    }
    let bindings = builder
        .generate()
        .expect("bindgen failed on DPDK headers (see the clang diagnostics above)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings.rs");
    println!("cargo:version={version}");
    println!("cargo:rustc-env=DPDK_SYS_BUILT_FOR={version}");
    println!("cargo:abi={}", abi_version());
}

/// The ABI version of the DPDK linked (EAL's `ABI_VERSION`: "23.0" for
/// 22.11, "25.0" for 24.11, "26.0" for 25.11): a source tree's
/// `ABI_VERSION` file (`RTE_SDK_SRC`), else the name of the file
/// `librte_eal.so` resolves to. Plugins are named by it, as EAL loads from
/// a directory only `*.so` and `*.so.<its ABI_VERSION>`.
fn abi_version() -> String {
    if let Some(src) = env::var_os("RTE_SDK_SRC") {
        if let Ok(v) = std::fs::read_to_string(PathBuf::from(src).join("ABI_VERSION")) {
            return v.trim().to_string();
        }
    }
    let libdir = pkg_config(&["--variable=libdir"]).trim().to_string();
    let sysroot = env::var("PKG_CONFIG_SYSROOT_DIR").unwrap_or_default();
    let eal = PathBuf::from(format!("{sysroot}{libdir}")).join("librte_eal.so");
    let real = std::fs::canonicalize(&eal).unwrap_or_else(|e| {
        panic!(
            "cannot resolve {} ({e}) to tell DPDK's ABI version; set RTE_SDK_SRC to its source tree",
            eal.display()
        )
    });
    let name = real.file_name().unwrap().to_string_lossy().into_owned();
    match name.strip_prefix("librte_eal.so.") {
        Some(abi) if !abi.is_empty() => abi.to_string(),
        _ => panic!("cannot tell DPDK's ABI version from {}", real.display()),
    }
}

/// DPDK's release, (year, month), from its version ("24.11.3").
fn release(version: &str) -> (u32, u32) {
    let mut it = version.split('.').map(|p| p.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(y), Some(m)) => (y, m),
        _ => panic!("cannot read DPDK's release from its version {version:?}"),
    }
}

/// Lines starting `sdk ` are driver-SDK structs, probed only with the SDK;
/// a field `name<YY.MM` exists only before release YY.MM.
fn generate_layout_probe(list: &Path, out: &Path, sdk: bool, at: (u32, u32)) -> PathBuf {
    let text = std::fs::read_to_string(list).expect("read layout.list");
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdalign.h>\n#include \"wrapper.h\"\n\
         #define S(t) { #t \".sizeof\", sizeof(struct t) }, { #t \".alignof\", alignof(struct t) },\n\
         #define F(t, f) { #t \".\" #f, offsetof(struct t, f) },\n\
         static const struct dpdk_sys_layout_entry table[] = {\n",
    );
    let mut rs = String::from(
        "/// Rust's view of the structs in `csrc/layout.list`.\n\
         pub fn rust_layout() -> Vec<(&'static str, usize)> {\n    vec![\n",
    );
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = match line.strip_prefix("sdk ") {
            Some(_) if !sdk => continue,
            Some(rest) => rest.trim(),
            None => line,
        };
        let (ty, fields) = line.split_once(':').expect("layout.list: `struct: fields`");
        let ty = ty.trim();
        c.push_str(&format!("S({ty})\n"));
        rs.push_str(&format!(
            "        (\"{ty}.sizeof\", core::mem::size_of::<crate::{ty}>()),\n        \
             (\"{ty}.alignof\", core::mem::align_of::<crate::{ty}>()),\n"
        ));
        for f in fields.split_whitespace() {
            let f = match f.split_once('<') {
                Some((name, until)) if at < release(until) => name,
                Some(_) => continue,
                None => f,
            };
            // bindgen appends `_` to fields named like Rust keywords
            let rust_field = match f {
                "type" | "fn" | "match" | "ref" | "mod" | "loop" => format!("{f}_"),
                _ => f.to_string(),
            };
            c.push_str(&format!("F({ty}, {f})\n"));
            rs.push_str(&format!(
                "        (\"{ty}.{f}\", core::mem::offset_of!(crate::{ty}, {rust_field})),\n"
            ));
        }
    }
    c.push_str(
        "};\nconst struct dpdk_sys_layout_entry *dpdk_sys_layout_table(size_t *count)\n\
         { *count = sizeof(table) / sizeof(table[0]); return table; }\n",
    );
    rs.push_str("    ]\n}\n");
    std::fs::write(out.join("layout_rust.rs"), rs).expect("write layout_rust.rs");
    let c_path = out.join("layout_probe.c");
    std::fs::write(&c_path, c).expect("write layout_probe.c");
    c_path
}
