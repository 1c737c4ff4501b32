//! `wit-bindgen-c-gen WIT_DIR WORLD OUT_DIR`: writes `<world>.h`, `<world>.c` and
//! `<world>_component_type.o` (the component-type custom section) to OUT_DIR, the same
//! files `wit-bindgen c --world WORLD WIT_DIR` would.

use anyhow::{Context, Result, bail};
use wit_bindgen_core::{Files, wit_parser::Resolve};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wit, world, out] = args.as_slice() else {
        bail!("usage: wit-bindgen-c-gen WIT_DIR WORLD OUT_DIR");
    };
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_path(wit)
        .with_context(|| format!("parsing {wit}"))?;
    let world_id = resolve.select_world(&[pkg], Some(world))?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world_id, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, bytes) in files.iter() {
        let path = std::path::Path::new(out).join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
