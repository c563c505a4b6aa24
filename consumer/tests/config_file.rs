//! The vendors file shipped for the local stack is valid.

#[test]
fn the_shipped_vendors_file_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/vendors.toml");
    let vendors = pricefront_consumer::vendors::load(&path).unwrap();
    assert_eq!(vendors.len(), 5);
}
