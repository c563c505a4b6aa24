package pricefront.peer;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * The rules of pricefront-core, for the peer: the vendors file, reading an offer out of a vendor's body through
 * its JSON pointers, money in minor units, the best offer, freshness, and the stored JSON (the exact shape serde
 * writes for {@code pricefront_core::Comparison}, so that the edge serves it).
 */
final class Comparisons {
    private Comparisons() {
    }

    /** JSON with decimals kept exact (prices are never floats). */
    static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);

    /** The result format version (core/src/comparison.rs RESULT_VERSION). */
    static final int RESULT_VERSION = 1;
    /** The default freshness policy of core/src/freshness.rs. */
    static final long PARTIAL_FRESH_MS = 60_000;
    static final long NEGATIVE_FRESH_MS = 10_000;
    static final long STALE_GRACE_MS = 300_000;

    private static final Pattern CURRENCY = Pattern.compile("[A-Z]{3}");
    private static final Pattern PRODUCT_ID = Pattern.compile("[1-9][0-9]{0,19}");

    /** One vendor of the vendors file (consumer/src/vendors/vendor.rs). */
    record Vendor(String name, String urlTemplate, long timeoutMs, long guaranteeMs, String pricePointer,
                  String currencyPointer, String fixedCurrency, String offerUrlPointer) {
        String urlFor(String productId) {
            return urlTemplate.replace("{productId}", productId);
        }
    }

    /** An offer: price in minor units. */
    record Offer(String vendor, long minorUnits, String currency, String url) {
    }

    /** What asking one vendor came to: an offer, or a failure with its kind (snake_case, as serde writes it). */
    record Outcome(Offer offer, long guaranteeMs, String vendor, String kind, String detail, int attempts) {
        static Outcome answered(Offer offer, long guaranteeMs) {
            return new Outcome(offer, guaranteeMs, offer.vendor(), null, null, 0);
        }

        static Outcome failed(String vendor, String kind, String detail) {
            return new Outcome(null, 0, vendor, kind, detail, 1);
        }
    }

    /** A value of the request topic that is not a version 1 request. */
    static final class BadRequest extends Exception {
        BadRequest(String message) {
            super(message);
        }
    }

    /** Reads the vendors file that the harness writes for our consumer. */
    static List<Vendor> loadVendors(Path path) throws IOException {
        JsonNode root = new TomlMapper().readTree(path.toFile());
        List<Vendor> vendors = new ArrayList<>();
        for (JsonNode v : root.path("vendor")) {
            String currencyPointer = text(v, "currency_pointer");
            String currency = text(v, "currency");
            if ((currencyPointer == null) == (currency == null)) {
                throw new IOException("vendor " + text(v, "name") + ": give exactly one of currency_pointer and currency");
            }
            vendors.add(new Vendor(
                    text(v, "name"),
                    text(v, "url"),
                    v.path("timeout_ms").asLong(2_000),
                    v.path("guarantee_window_secs").asLong() * 1_000,
                    text(v, "price_pointer"),
                    currencyPointer,
                    currency,
                    text(v, "offer_url_pointer")));
        }
        if (vendors.isEmpty()) {
            throw new IOException(path + " lists no vendor");
        }
        return vendors;
    }

    private static String text(JsonNode node, String field) {
        JsonNode value = node.get(field);
        return value == null || value.isNull() ? null : value.asText();
    }

    /** The product id of a request message {@code {"v":1,"productId":"42",...}} (core/src/request.rs). */
    static String productIdOf(String value) throws BadRequest {
        JsonNode message;
        try {
            message = JSON.readTree(value);
        } catch (IOException e) {
            throw new BadRequest("not JSON: " + e.getMessage());
        }
        if (message == null || message.path("v").asInt(-1) != 1) {
            throw new BadRequest("not a version 1 request");
        }
        String id = message.path("productId").asText("");
        try {
            if (PRODUCT_ID.matcher(id).matches() && Long.parseUnsignedLong(id) != 0) {
                return id;
            }
        } catch (NumberFormatException e) {
            // Out of range: below.
        }
        throw new BadRequest("bad productId " + id);
    }

    /** Reads the offer out of a 2xx body through the vendor's pointers (consumer/src/vendors/offers.rs). */
    static Outcome readOffer(Vendor vendor, byte[] body) {
        try {
            JsonNode json = JSON.readTree(body);
            if (json == null) {
                return Outcome.failed(vendor.name(), "malformed_body", "unreadable body: empty");
            }
            String currency = vendor.fixedCurrency();
            if (currency == null) {
                JsonNode node = json.at(vendor.currencyPointer());
                if (!node.isTextual()) {
                    return malformed(vendor, vendor.currencyPointer() + " is not a string");
                }
                currency = node.asText();
            }
            if (!CURRENCY.matcher(currency).matches()) {
                return malformed(vendor, "bad currency " + currency);
            }
            JsonNode price = json.at(vendor.pricePointer());
            String amount;
            if (price.isTextual()) {
                amount = price.asText();
            } else if (price.isNumber()) {
                amount = price.isIntegralNumber() ? price.bigIntegerValue().toString()
                        : price.decimalValue().toPlainString();
            } else {
                return malformed(vendor, vendor.pricePointer() + " is not a price");
            }
            long minor = minorUnits(amount, currency);
            String url = null;
            if (vendor.offerUrlPointer() != null) {
                JsonNode link = json.at(vendor.offerUrlPointer());
                url = link.isTextual() ? link.asText() : null;
            }
            return Outcome.answered(new Offer(vendor.name(), minor, currency, url), vendor.guaranteeMs());
        } catch (IOException | IllegalArgumentException e) {
            return malformed(vendor, e.getMessage());
        }
    }

    private static Outcome malformed(Vendor vendor, String why) {
        return Outcome.failed(vendor.name(), "malformed_body", "unreadable body: " + why);
    }

    /** core/src/money.rs Currency::minor_unit_digits. */
    static int minorUnitDigits(String currency) {
        if (Set.of("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
                "XAF", "XOF", "XPF").contains(currency)) {
            return 0;
        }
        if (Set.of("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND").contains(currency)) {
            return 3;
        }
        if (Set.of("CLF", "UYW").contains(currency)) {
            return 4;
        }
        return 2;
    }

    /** core/src/money.rs Money::from_decimal: an exact plain decimal into minor units. */
    static long minorUnits(String amount, String currency) {
        int dot = amount.indexOf('.');
        String whole = dot < 0 ? amount : amount.substring(0, dot);
        String fraction = dot < 0 ? "" : amount.substring(dot + 1);
        if (whole.isEmpty() || !whole.chars().allMatch(c -> c >= '0' && c <= '9')
                || !fraction.chars().allMatch(c -> c >= '0' && c <= '9') || amount.endsWith(".")) {
            throw new IllegalArgumentException("the amount must be a plain non-negative decimal, got " + amount);
        }
        int digits = minorUnitDigits(currency);
        String significant = fraction.replaceAll("0+$", "");
        if (significant.length() > digits) {
            throw new IllegalArgumentException("the amount " + amount + " is too precise for " + currency);
        }
        long units = 0;
        for (int i = 0; i < digits; i++) {
            units = units * 10 + (i < significant.length() ? significant.charAt(i) - '0' : 0);
        }
        try {
            return Math.addExact(Math.multiplyExact(Long.parseLong(whole), pow10(digits)), units);
        } catch (ArithmeticException | NumberFormatException e) {
            throw new IllegalArgumentException("the amount " + amount + " is too large");
        }
    }

    private static long pow10(int digits) {
        long p = 1;
        for (int i = 0; i < digits; i++) {
            p *= 10;
        }
        return p;
    }

    /** The comparison, computed at {@code computedAtMs}, as the JSON serde writes for Comparison::aggregate. */
    static Result aggregate(String productId, List<Outcome> outcomes, long computedAtMs) {
        List<Offer> offers = new ArrayList<>();
        List<Outcome> failures = new ArrayList<>();
        long shortest = Long.MAX_VALUE;
        for (Outcome o : outcomes) {
            if (o.offer() != null) {
                offers.add(o.offer());
                shortest = Math.min(shortest, o.guaranteeMs());
            } else {
                failures.add(o);
            }
        }
        offers.sort(Comparator.comparing(Offer::currency).thenComparingLong(Offer::minorUnits)
                .thenComparing(Offer::vendor));
        failures.sort(Comparator.comparing(Outcome::vendor));
        boolean complete = failures.isEmpty() && !offers.isEmpty();
        long window = offers.isEmpty() ? NEGATIVE_FRESH_MS : complete ? shortest : Math.min(shortest, PARTIAL_FRESH_MS);
        long freshUntil = saturatingAdd(computedAtMs, window);
        long staleUntil = saturatingAdd(freshUntil, STALE_GRACE_MS);

        ObjectNode root = JSON.createObjectNode();
        root.put("v", RESULT_VERSION);
        root.put("productId", productId);
        ArrayNode offerArray = root.putArray("offers");
        offers.forEach(o -> offerArray.add(offerJson(o)));
        Offer best = bestOffer(offers);
        if (best == null) {
            root.putNull("bestOffer");
        } else {
            root.set("bestOffer", offerJson(best));
        }
        ArrayNode failureArray = root.putArray("failures");
        for (Outcome f : failures) {
            ObjectNode n = failureArray.addObject();
            n.put("vendor", f.vendor());
            n.put("kind", f.kind());
            n.put("detail", f.detail());
            n.put("attempts", f.attempts());
        }
        root.put("computedAtMs", computedAtMs);
        root.put("freshUntilMs", freshUntil);
        root.put("staleUntilMs", staleUntil);
        root.put("complete", complete);
        return new Result(root.toString(), staleUntil);
    }

    /** The stored JSON and its stale-until (the cache entry expires then). */
    record Result(String json, long staleUntilMs) {
    }

    /**
     * core/src/comparison.rs best_offer: the cheapest in the currency most offers are quoted in (ties: the
     * alphabetically first currency, then the alphabetically first vendor).
     */
    static Offer bestOffer(List<Offer> offers) {
        Map<String, Integer> perCurrency = new TreeMap<>();
        offers.forEach(o -> perCurrency.merge(o.currency(), 1, Integer::sum));
        String currency = null;
        int most = 0;
        for (Map.Entry<String, Integer> e : perCurrency.entrySet()) {
            if (e.getValue() > most) {
                currency = e.getKey();
                most = e.getValue();
            }
        }
        if (currency == null) {
            return null;
        }
        String chosen = currency;
        return offers.stream().filter(o -> o.currency().equals(chosen))
                .min(Comparator.comparingLong(Offer::minorUnits).thenComparing(Offer::vendor))
                .orElse(null);
    }

    private static ObjectNode offerJson(Offer o) {
        ObjectNode n = JSON.createObjectNode();
        n.put("vendor", o.vendor());
        ObjectNode price = n.putObject("price");
        price.put("minorUnits", o.minorUnits());
        price.put("currency", o.currency());
        if (o.url() != null) {
            n.put("url", o.url());
        }
        return n;
    }

    private static long saturatingAdd(long a, long b) {
        long sum = a + b;
        return sum < a ? Long.MAX_VALUE : sum;
    }
}
