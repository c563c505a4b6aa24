package pricefront.peer;

import io.confluent.parallelconsumer.ParallelConsumerOptions;
import io.confluent.parallelconsumer.ParallelConsumerOptions.CommitMode;
import io.confluent.parallelconsumer.ParallelConsumerOptions.ProcessingOrder;
import io.confluent.parallelconsumer.ParallelStreamProcessor;
import io.confluent.parallelconsumer.vertx.VertxParallelEoSStreamProcessor;
import io.lettuce.core.RedisClient;
import io.lettuce.core.SetArgs;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.async.RedisAsyncCommands;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.ext.web.client.WebClient;
import io.vertx.ext.web.client.WebClientOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;

import pricefront.peer.Comparisons.Outcome;
import pricefront.peer.Comparisons.Vendor;

/**
 * The Confluent Parallel Consumer doing pricefront's fan-out: per request record, every vendor at once, the best
 * offer, and {@code SET price:v1:{id} <comparison> PX <until stale-until>} in Redis.
 *
 * <pre>
 * java -jar parallel-consumer-peer.jar --bootstrap-servers 127.0.0.1:9092 --topic T --group-id G \
 *     --redis-url redis://127.0.0.1:6390/0 --vendors vendors.toml --window 256 [--mode vertx|core]
 * </pre>
 *
 * {@code vertx} (the default): the library's Vert.x module, {@code vertxFuture}, vendors called with its Vert.x
 * WebClient, non-blocking. {@code core}: the core module's {@code poll}, one worker thread per concurrent record
 * (the core module's model), vendors called with java.net.http's async client, the worker waiting for the result.
 */
public final class PeerConsumer {
    private PeerConsumer() {
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = parse(argv);
        String bootstrap = required(args, "bootstrap-servers");
        String topic = required(args, "topic");
        String group = required(args, "group-id");
        String redisUrl = required(args, "redis-url");
        List<Vendor> vendors = Comparisons.loadVendors(Path.of(required(args, "vendors")));
        int window = Integer.parseInt(required(args, "window"));
        String mode = args.getOrDefault("mode", "vertx");

        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        // The library coordinates offsets: its README says auto commit must be off.
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        KafkaConsumer<String, String> kafka = new KafkaConsumer<>(props);

        ParallelConsumerOptions<String, String> options = ParallelConsumerOptions.<String, String>builder()
                .ordering(ProcessingOrder.KEY)
                .maxConcurrency(window)
                // At-least-once without a producer: the README's suggested start, and the default.
                .commitMode(CommitMode.PERIODIC_CONSUMER_ASYNCHRONOUS)
                .consumer(kafka)
                .build();

        // Lettuce: one thread-safe connection shared by every worker, commands pipelined (its documented use).
        RedisClient redisClient = RedisClient.create(redisUrl);
        StatefulRedisConnection<String, String> connection = redisClient.connect();
        Filler filler = new Filler(vendors, connection.async());

        AutoCloseable processor;
        switch (mode) {
            case "vertx" -> {
                int cores = Runtime.getRuntime().availableProcessors();
                Vertx vertx = Vertx.vertx(new VertxOptions().setWorkerPoolSize(cores));
                // The module sizes the WebClient's pool to maxConcurrency per host. Our simulated vendors share
                // one host:port, where real vendors each have their own: the pool is per vendor times vendors.
                WebClient web = WebClient.create(vertx, new WebClientOptions()
                        .setMaxPoolSize(window * vendors.size())
                        .setHttp2MaxPoolSize(window * vendors.size()));
                var pc = new VertxParallelEoSStreamProcessor<String, String>(vertx, web, options);
                pc.subscribe(List.of(topic));
                pc.vertxFuture(context -> Future.fromCompletionStage(
                        filler.fill(context.getSingleConsumerRecord().value(), vertxFetch(web))));
                processor = pc;
            }
            case "core" -> {
                HttpClient http = HttpClient.newBuilder()
                        .version(HttpClient.Version.HTTP_1_1)
                        .connectTimeout(Duration.ofSeconds(2))
                        .build();
                ParallelStreamProcessor<String, String> pc = ParallelStreamProcessor.createEosStreamProcessor(options);
                pc.subscribe(List.of(topic));
                pc.poll(context -> filler.fill(context.getSingleConsumerRecord().value(), jdkFetch(http))
                        .toCompletableFuture().join());
                processor = pc;
            }
            default -> throw new IllegalArgumentException("--mode must be vertx or core, got " + mode);
        }
        System.out.println("peer: consuming " + topic + " as " + group + ", window " + window + ", mode " + mode
                + ", " + vendors.size() + " vendors");
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                processor.close();
            } catch (Exception e) {
                System.err.println("peer: closing: " + e);
            }
            connection.close();
            redisClient.shutdown();
        }));
        Thread.currentThread().join();
    }

    /** Asks one vendor, with java.net.http's async client. */
    static Function<Vendor, Function<String, CompletionStage<Outcome>>> jdkFetch(HttpClient http) {
        return vendor -> productId -> {
            HttpRequest request = HttpRequest.newBuilder(URI.create(vendor.urlFor(productId)))
                    .timeout(Duration.ofMillis(vendor.timeoutMs()))
                    .header("accept", "application/json")
                    .GET()
                    .build();
            return http.sendAsync(request, HttpResponse.BodyHandlers.ofByteArray())
                    .handle((response, error) -> {
                        if (error != null) {
                            return failure(vendor, error);
                        }
                        if (response.statusCode() / 100 != 2) {
                            return Outcome.failed(vendor.name(), "http_status", "answered " + response.statusCode());
                        }
                        return Comparisons.readOffer(vendor, response.body());
                    });
        };
    }

    /** Asks one vendor, with the Vert.x WebClient. */
    static Function<Vendor, Function<String, CompletionStage<Outcome>>> vertxFetch(WebClient web) {
        return vendor -> productId -> web.getAbs(vendor.urlFor(productId))
                .timeout(vendor.timeoutMs())
                .putHeader("accept", "application/json")
                .send()
                .toCompletionStage()
                .handle((response, error) -> {
                    if (error != null) {
                        return failure(vendor, error);
                    }
                    if (response.statusCode() / 100 != 2) {
                        return Outcome.failed(vendor.name(), "http_status", "answered " + response.statusCode());
                    }
                    return Comparisons.readOffer(vendor, response.body() == null ? new byte[0]
                            : response.body().getBytes());
                });
    }

    private static Outcome failure(Vendor vendor, Throwable error) {
        Throwable cause = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
        if (cause instanceof HttpTimeoutException || cause instanceof TimeoutException
                || cause.getClass().getSimpleName().contains("Timeout")) {
            return Outcome.failed(vendor.name(), "timeout", "no answer within " + vendor.timeoutMs() + " ms");
        }
        if (cause instanceof ConnectException) {
            return Outcome.failed(vendor.name(), "connect", "could not connect: " + cause.getMessage());
        }
        return Outcome.failed(vendor.name(), "connect", "request failed: " + cause);
    }

    /** One record's work: every vendor at once, aggregate, store. */
    static final class Filler {
        private final List<Vendor> vendors;
        private final RedisAsyncCommands<String, String> redis;

        Filler(List<Vendor> vendors, RedisAsyncCommands<String, String> redis) {
            this.vendors = vendors;
            this.redis = redis;
        }

        CompletionStage<Void> fill(String value, Function<Vendor, Function<String, CompletionStage<Outcome>>> fetch) {
            String productId;
            try {
                productId = Comparisons.productIdOf(value);
            } catch (Comparisons.BadRequest e) {
                // Our consumer dead-letters these; the peer skips them (the benchmark publishes none).
                System.err.println("peer: skipping a bad request: " + e.getMessage());
                return CompletableFuture.completedFuture(null);
            }
            List<CompletableFuture<Outcome>> calls = new ArrayList<>(vendors.size());
            for (Vendor vendor : vendors) {
                calls.add(fetch.apply(vendor).apply(productId).toCompletableFuture());
            }
            return CompletableFuture.allOf(calls.toArray(CompletableFuture[]::new)).thenCompose(done -> {
                List<Outcome> outcomes = new ArrayList<>(calls.size());
                calls.forEach(c -> outcomes.add(c.join()));
                long now = System.currentTimeMillis();
                Comparisons.Result result = Comparisons.aggregate(productId, outcomes, now);
                long ttl = result.staleUntilMs() - System.currentTimeMillis();
                if (ttl <= 0) {
                    return CompletableFuture.completedFuture(null);
                }
                return redis.set("price:v1:" + productId, result.json(), SetArgs.Builder.px(ttl))
                        .thenApply(ok -> (Void) null);
            });
        }
    }

    private static Map<String, String> parse(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value pairs, got " + String.join(" ", argv));
            }
            args.put(argv[i].substring(2), argv[++i]);
        }
        return args;
    }

    private static String required(Map<String, String> args, String name) {
        String value = args.get(name);
        if (value == null) {
            throw new IllegalArgumentException("missing --" + name);
        }
        return value;
    }
}
