//! The shape of the code, checked: no crate has an import cycle (no module reaches, through the modules
//! it names, a module that names it back), and the consumer's stage folders depend one way only
//! (`intake` on `vendors` and `sinks`, all three on `process`, nothing on what is above it).
//!
//! Each crate's modules are read with `syn`: every path a module names (in `use` items, in code, and in
//! macro arguments) that starts at `crate`, `self`, `super` or one of its child modules is an edge to the
//! deepest module it reaches, following `pub use` re-exports to where the item is defined. Module
//! declarations (`mod x;`) and re-exports themselves are not edges; test modules' paths are (a cycle
//! through a test is a cycle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module's path from its crate's root (`[]` for the root).
type ModulePath = Vec<String>;

/// The library (or binary) crates whose module graphs are checked, and each one's root file.
const CRATES: [(&str, &str); 8] = [
    ("core", "lib.rs"),
    ("consumer", "lib.rs"),
    ("edge", "lib.rs"),
    ("harness", "lib.rs"),
    ("bench", "main.rs"),
    ("drills", "lib.rs"),
    ("vendor-sim", "lib.rs"),
    ("catalog", "main.rs"),
];

#[test]
fn no_crate_has_an_import_cycle() {
    let mut cycles = Vec::new();
    for (dir, root) in CRATES {
        let graph = Graph::of_crate(&repo().join(dir).join("src"), root);
        for component in graph.cycles() {
            let names: Vec<String> = component.iter().map(|m| display(m)).collect();
            let edges: Vec<String> = graph
                .edges
                .iter()
                .filter(|((from, to), _)| component.contains(from) && component.contains(to))
                .map(|((from, to), items)| {
                    format!("{} -> {} ({})", display(from), display(to), join(items))
                })
                .collect();
            cycles.push(format!(
                "{dir}: {}\n    {}",
                names.join(", "),
                edges.join("\n    ")
            ));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_consumers_stages_depend_one_way() {
    // A folder may use the folders of a lower rank only.
    let rank = |folder: &str| match folder {
        "process" => Some(0),
        "vendors" | "sinks" => Some(1),
        "intake" => Some(2),
        _ => None,
    };
    let graph = Graph::of_crate(&repo().join("consumer/src"), "lib.rs");
    let mut wrong = Vec::new();
    for ((from, to), items) in &graph.edges {
        let (Some(from_folder), Some(to_folder)) = (from.first(), to.first()) else {
            continue;
        };
        if from_folder == to_folder {
            continue;
        }
        match (rank(from_folder), rank(to_folder)) {
            (Some(a), Some(b)) if b < a => {}
            _ => wrong.push(format!(
                "{} -> {} ({})",
                display(from),
                display(to),
                join(items)
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "uses against the stages' order (process < vendors, sinks < intake):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_a_cycle_through_a_re_export_and_a_test() {
    let dir = std::env::temp_dir().join(format!("pricefront-shape-{}", std::process::id()));
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
        std::fs::write(path, text).expect("a file");
    };
    write(
        "lib.rs",
        "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub use b::Thing;\n",
    );
    // A re-export its module also uses: d ⇄ d::e.
    write(
        "d/mod.rs",
        "pub mod e;\npub use e::Other;\npub struct Uses(Other);\n",
    );
    write(
        "d/e.rs",
        "pub struct Other;\npub fn back(_: crate::d::Uses) {}\n",
    );
    // A re-export alone is no edge; `pub(crate)` names no module.
    write("c.rs", "pub use crate::a::f;\npub(crate) fn h() {}\n");
    write(
        "a.rs",
        "pub fn f() -> crate::Thing { crate::c::h(); crate::Thing }\n",
    );
    write(
        "b/mod.rs",
        "pub struct Thing;\n#[cfg(test)]\nmod tests {\n    fn g() { super::super::a::f(); }\n}\n",
    );
    let graph = Graph::of_crate(&dir, "lib.rs");
    let _ = std::fs::remove_dir_all(&dir);
    let module = |path: &str| path.split("::").map(str::to_owned).collect::<ModulePath>();
    assert_eq!(
        graph.cycles(),
        vec![
            BTreeSet::from([module("a"), module("b")]),
            BTreeSet::from([module("d"), module("d::e")]),
        ]
    );
}

/// A crate's modules and the edges between them, each with the items it names.
struct Graph {
    modules: BTreeSet<ModulePath>,
    edges: BTreeMap<(ModulePath, ModulePath), BTreeSet<String>>,
}

impl Graph {
    /// Reads every module file under `src` (but `src/bin/`, other crates), `root` being the crate root.
    fn of_crate(src: &Path, root: &str) -> Self {
        let mut files = BTreeMap::new();
        collect_files(src, src, root, &mut files);
        let parsed: BTreeMap<ModulePath, syn::File> = files
            .iter()
            .map(|(module, path)| {
                let text = std::fs::read_to_string(path).expect("a readable source file");
                let file = syn::parse_file(&text)
                    .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
                (module.clone(), file)
            })
            .collect();
        let modules: BTreeSet<ModulePath> = parsed.keys().cloned().collect();
        let mut reexports = BTreeMap::new();
        for (module, file) in &parsed {
            for item in &file.items {
                if let syn::Item::Use(item) = item {
                    if !matches!(item.vis, syn::Visibility::Inherited) {
                        for (path, name) in use_paths(&item.tree, Vec::new()) {
                            if let (Some(target), Some(name)) =
                                (absolute(module, &path, &modules), name)
                            {
                                reexports.insert((module.clone(), name), target);
                            }
                        }
                    }
                }
            }
        }
        let mut graph = Graph {
            modules,
            edges: BTreeMap::new(),
        };
        for (module, file) in &parsed {
            let mut names = Names {
                scope: module.clone(),
                found: Vec::new(),
            };
            names.visit_file(file);
            for (scope, path) in names.found {
                // A name this module re-exports and also uses itself is an edge too.
                let reexported = || {
                    let (first, rest) = path.split_first()?;
                    let mut target = reexports.get(&(module.clone(), first.clone()))?.clone();
                    target.extend(rest.iter().cloned());
                    Some(target)
                };
                let Some(target) = absolute(&scope, &path, &graph.modules).or_else(reexported)
                else {
                    continue;
                };
                let (to, item) = resolve(target, &graph.modules, &reexports);
                if to != *module {
                    graph
                        .edges
                        .entry((module.clone(), to))
                        .or_default()
                        .insert(item);
                }
            }
        }
        graph
    }

    /// The cycles: each strongly connected set of more than one module.
    fn cycles(&self) -> Vec<BTreeSet<ModulePath>> {
        let mut next: BTreeMap<&ModulePath, Vec<&ModulePath>> = BTreeMap::new();
        for (from, to) in self.edges.keys() {
            next.entry(from).or_default().push(to);
        }
        let reach = |start: &ModulePath| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![start];
            while let Some(m) = stack.pop() {
                for n in next.get(m).into_iter().flatten() {
                    if seen.insert((*n).clone()) {
                        stack.push(n);
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<&ModulePath, BTreeSet<ModulePath>> =
            self.modules.iter().map(|m| (m, reach(m))).collect();
        let mut cycles: Vec<BTreeSet<ModulePath>> = Vec::new();
        for (m, reached) in &reaches {
            if !reached.contains(*m) || cycles.iter().any(|c| c.contains(*m)) {
                continue;
            }
            let component: BTreeSet<ModulePath> = reached
                .iter()
                .filter(|n| reaches.get(n).is_some_and(|r| r.contains(*m)))
                .cloned()
                .collect();
            cycles.push(component);
        }
        cycles
    }
}

/// Every `.rs` file under `dir` by its module path (`a/b.rs` and `a/b/mod.rs` are `a::b`; `root` is
/// `[]`); `src/bin/` and another root file (a binary beside the library) are other crates.
fn collect_files(src: &Path, dir: &Path, root: &str, out: &mut BTreeMap<ModulePath, PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("a source folder")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let relative = path.strip_prefix(src).expect("under src");
        if path.is_dir() {
            if relative != Path::new("bin") {
                collect_files(src, &path, root, out);
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let mut parts: ModulePath = relative
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
            if relative != Path::new(root) {
                continue;
            }
            parts.clear();
        } else if parts.last().is_some_and(|last| last == "mod") {
            parts.pop();
        }
        out.insert(parts, path);
    }
}

/// The paths a `use` tree names, each with the name it brings in (`None` for a glob).
fn use_paths(tree: &syn::UseTree, prefix: Vec<String>) -> Vec<(Vec<String>, Option<String>)> {
    let with = |segment: String| {
        let mut path = prefix.clone();
        path.push(segment);
        path
    };
    match tree {
        syn::UseTree::Path(p) => use_paths(&p.tree, with(p.ident.to_string())),
        syn::UseTree::Name(n) if n.ident == "self" => {
            let name = prefix.last().cloned();
            vec![(prefix, name)]
        }
        syn::UseTree::Name(n) => vec![(with(n.ident.to_string()), Some(n.ident.to_string()))],
        syn::UseTree::Rename(r) => vec![(with(r.ident.to_string()), Some(r.rename.to_string()))],
        syn::UseTree::Glob(_) => vec![(prefix, None)],
        syn::UseTree::Group(g) => g
            .items
            .iter()
            .flat_map(|item| use_paths(item, prefix.clone()))
            .collect(),
    }
}

/// `path`, named in the module (or inline module) `scope`, from the crate's root; `None` when it does
/// not start in this crate (another crate, a local name, a prelude item).
fn absolute(
    scope: &[String],
    path: &[String],
    modules: &BTreeSet<ModulePath>,
) -> Option<ModulePath> {
    let (first, rest) = path.split_first()?;
    let mut base: ModulePath = scope.to_vec();
    match first.as_str() {
        "crate" => return Some(rest.to_vec()),
        "self" => {}
        "super" => {
            base.pop();
            let mut rest = rest;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            return Some(base);
        }
        child => {
            let mut candidate = base.clone();
            candidate.push(child.to_owned());
            if !modules.contains(&candidate) {
                return None;
            }
            candidate.extend(rest.iter().cloned());
            return Some(candidate);
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The module a crate-absolute path lands in (the deepest module it names, re-exports followed) and
/// the item it names there.
fn resolve(
    mut path: ModulePath,
    modules: &BTreeSet<ModulePath>,
    reexports: &BTreeMap<(ModulePath, String), ModulePath>,
) -> (ModulePath, String) {
    for _ in 0..8 {
        let depth = (0..=path.len())
            .rev()
            .find(|&k| modules.contains(&path[..k].to_vec()))
            .unwrap_or(0);
        let module = path[..depth].to_vec();
        let Some(name) = path.get(depth) else {
            return (module, "*".to_owned());
        };
        match reexports.get(&(module.clone(), name.clone())) {
            Some(target) if *target != path[..=depth] => {
                let mut followed = target.clone();
                followed.extend(path[depth + 1..].iter().cloned());
                path = followed;
            }
            _ => return (module, path[depth..].join("::")),
        }
    }
    (path.clone(), path.join("::"))
}

/// Every path a file names, with the module or inline module (`tests`) it is named in.
struct Names {
    scope: ModulePath,
    found: Vec<(ModulePath, Vec<String>)>,
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.scope.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.scope.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        // A re-export is followed through to where its item lives, not an edge of its own.
        if !matches!(item.vis, syn::Visibility::Inherited) {
            return;
        }
        for (path, _) in use_paths(&item.tree, Vec::new()) {
            self.found.push((self.scope.clone(), path));
        }
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {
        // `pub(crate)`, `pub(super)`: who may see an item, not what it uses.
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.found.push((self.scope.clone(), segments));
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        macro_paths(mac.tokens.clone(), &mut |path| {
            self.found.push((self.scope.clone(), path))
        });
        syn::visit::visit_macro(self, mac);
    }
}

/// The `crate::…`, `self::…` and `super::…` paths in a macro's arguments.
fn macro_paths(tokens: TokenStream, found: &mut dyn FnMut(Vec<String>)) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Group(group) => macro_paths(group.stream(), found),
            TokenTree::Ident(ident)
                if ["crate", "self", "super"].contains(&ident.to_string().as_str()) =>
            {
                let mut path = vec![ident.to_string()];
                let mut j = i + 1;
                while let (
                    Some(TokenTree::Punct(a)),
                    Some(TokenTree::Punct(b)),
                    Some(TokenTree::Ident(next)),
                ) = (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    path.push(next.to_string());
                    j += 3;
                }
                if path.len() > 1 {
                    found(path);
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

fn display(module: &[String]) -> String {
    if module.is_empty() {
        "<root>".to_owned()
    } else {
        module.join("::")
    }
}

fn join(items: &BTreeSet<String>) -> String {
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The repository checked: this one, or the checkout `PRICEFRONT_SHAPE_ROOT` names (to see what the
/// check says of another revision).
fn repo() -> PathBuf {
    match std::env::var_os("PRICEFRONT_SHAPE_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the repository")
            .to_path_buf(),
    }
}
