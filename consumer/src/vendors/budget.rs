//! A vendor's daily budget of requests (`max_requests_per_day`), shared by the whole consumer group
//! through Redis and reset at the vendor's day boundary (`budget_time_zone`, e.g. eBay's
//! America/Los_Angeles midnight).
//!
//! Each request takes one from the day's count (`INCR` of [`budget_key`], which expires two days after
//! it is made); past the budget the call fails as `quota` without a request. When Redis does not answer,
//! the request goes out uncounted (the budget guards an allowance, and a Redis outage must not silence
//! every vendor); the metric `pricefront_vendor_budget_unchecked_total` counts those.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use redis::aio::ConnectionManager;

use crate::process::clock;

/// A vendor's daily budget, as configured.
#[derive(Debug, Clone)]
pub struct BudgetSettings {
    /// Requests a day, for the whole group.
    pub max_requests_per_day: u64,
    /// Where the vendor's day starts and ends.
    pub time_zone: TimeZone,
    /// The zone's name, for messages.
    pub time_zone_name: String,
}

/// The Redis key counting `vendor`'s requests on `day` (`YYYY-MM-DD` in its time zone).
pub fn budget_key(vendor: &str, day: &str) -> String {
    format!("pricefront:v1:budget:{vendor}:{day}")
}

/// The vendor's day at `now`, as `YYYY-MM-DD`.
pub fn day_of(now: Timestamp, zone: &TimeZone) -> String {
    now.to_zoned(zone.clone()).date().to_string()
}

/// What taking one request from the budget came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Within the budget: send the request.
    Within,
    /// Past it: no request until the vendor's next day.
    Spent {
        /// The budget.
        budget: u64,
        /// The vendor's day, in its zone.
        day: String,
    },
    /// Redis did not answer: the request goes out uncounted.
    Unchecked(String),
}

/// One vendor's daily budget, checked in Redis.
#[derive(Clone)]
pub struct DailyBudget {
    vendor: String,
    settings: BudgetSettings,
    redis: ConnectionManager,
}

impl std::fmt::Debug for DailyBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DailyBudget")
            .field("vendor", &self.vendor)
            .field("settings", &self.settings)
            .finish()
    }
}

impl DailyBudget {
    /// `vendor`'s budget, counted through `redis`.
    pub fn new(vendor: &str, settings: BudgetSettings, redis: ConnectionManager) -> Self {
        Self {
            vendor: vendor.to_owned(),
            settings,
            redis,
        }
    }

    /// Takes one request from today's budget.
    pub async fn take(&self) -> Taken {
        let now = Timestamp::try_from(clock::now()).unwrap_or(Timestamp::UNIX_EPOCH);
        let day = day_of(now, &self.settings.time_zone);
        let key = budget_key(&self.vendor, &day);
        let mut redis = self.redis.clone();
        let counted: Result<(u64,), _> = redis::pipe()
            .atomic()
            .incr(&key, 1u64)
            .expire(&key, 2 * 86_400)
            .ignore()
            .query_async(&mut redis)
            .await;
        match counted {
            Ok((count,)) if count <= self.settings.max_requests_per_day => Taken::Within,
            Ok(_) => Taken::Spent {
                budget: self.settings.max_requests_per_day,
                day,
            },
            Err(error) => Taken::Unchecked(error.to_string()),
        }
    }

    /// The budget's time zone name.
    pub fn time_zone_name(&self) -> &str {
        &self.settings.time_zone_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_turns_at_the_vendors_midnight() {
        let pacific = TimeZone::get("America/Los_Angeles").unwrap();
        // 07:30 UTC on 5 December is 23:30 on the 4th in Los Angeles (PST, UTC-8).
        let before: Timestamp = "2026-12-05T07:30:00Z".parse().unwrap();
        let after: Timestamp = "2026-12-05T08:00:00Z".parse().unwrap();
        assert_eq!(day_of(before, &pacific), "2026-12-04");
        assert_eq!(day_of(after, &pacific), "2026-12-05");
        // In summer (PDT, UTC-7) midnight is 07:00 UTC.
        let summer: Timestamp = "2026-07-01T07:00:00Z".parse().unwrap();
        assert_eq!(day_of(summer, &pacific), "2026-07-01");
        assert_eq!(day_of(before, &TimeZone::UTC), "2026-12-05");
        assert_eq!(
            budget_key("ebay", "2026-12-05"),
            "pricefront:v1:budget:ebay:2026-12-05"
        );
    }
}
