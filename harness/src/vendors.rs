//! The simulated vendors of a run: their profiles, and the vendors file that points a consumer at them.

use vendor_sim::{BodyShape, Profiles, VendorProfile};

/// A simulated vendor with the given latency range.
pub fn vendor(latency_ms: (u64, u64), shape: BodyShape) -> VendorProfile {
    VendorProfile {
        latency_min_ms: latency_ms.0,
        latency_max_ms: latency_ms.1,
        shape,
        ..VendorProfile::default()
    }
}

/// A simulated vendor answering `status` to every call, after 5 to 10 ms.
pub fn failing_vendor(status: u16) -> VendorProfile {
    VendorProfile {
        error_rate: 1.0,
        error_status: status,
        ..vendor((5, 10), BodyShape::Nested)
    }
}

/// A vendor's settings for tests that want its circuit decided quickly: one attempt per call, and a
/// decision after 4 calls.
pub const QUICK_BREAKER: &str = "max_attempts = 1\nbreaker_minimum_calls = 4";

/// Profiles from `(name, profile)` pairs.
pub fn profiles(vendors: impl IntoIterator<Item = (&'static str, VendorProfile)>) -> Profiles {
    profiles_of(vendors.into_iter().map(|(n, p)| (n.to_owned(), p)))
}

/// Profiles from `(name, profile)` pairs with owned names.
pub fn profiles_of(vendors: impl IntoIterator<Item = (String, VendorProfile)>) -> Profiles {
    Profiles {
        vendors: vendors.into_iter().collect(),
    }
}

/// The vendors file that points the consumer at the simulated vendors, with each vendor's extra
/// `settings` lines.
pub(crate) fn vendors_toml(
    profiles: &Profiles,
    base: &str,
    timeout_ms: u64,
    settings: &[(&str, &str)],
) -> String {
    let mut text = String::new();
    for (name, profile) in &profiles.vendors {
        let [price, currency, url] = profile.shape.pointers();
        text.push_str(&format!(
            "[[vendor]]\nname = \"{name}\"\nurl = \"{base}/vendors/{name}/prices/{{productId}}\"\ntimeout_ms = {timeout_ms}\nguarantee_window_secs = 600\nprice_pointer = \"{price}\"\ncurrency_pointer = \"{currency}\"\noffer_url_pointer = \"{url}\"\n"
        ));
        for (_, extra) in settings.iter().filter(|(vendor, _)| vendor == name) {
            text.push_str(extra);
            text.push('\n');
        }
        text.push('\n');
    }
    text
}
