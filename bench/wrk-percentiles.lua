-- Prints the latency distribution wrk measured, one line per percentile ("PERCENTILE <p> <microseconds>"),
-- for the edge benchmark's chart (bench/src/edge.rs reads these lines).
done = function(summary, latency, requests)
  local points = {1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9}
  for _, p in ipairs(points) do
    io.write(string.format("PERCENTILE %g %d\n", p, latency:percentile(p)))
  end
end
