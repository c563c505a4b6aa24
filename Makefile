# pricefront: two commands on a fresh machine.
#   make test   installs what is missing and runs the whole test suite against the real local stack
#   make dev    installs what is missing and runs the whole service locally (Ctrl-C stops it)
dev:
	scripts/dev.sh

.PHONY: dev test bench drills stack-up stack-down stack-status lint

test:
	scripts/test.sh

# Benchmarks, side by side with their baselines; prints a table and rewrites BENCHMARKS.md.
bench:
	scripts/bench.sh

# Reliability drills: one fault under load each; prints a table and rewrites RELIABILITY.md.
drills:
	scripts/drills.sh

stack-up:
	dev/stack.sh up

stack-down:
	dev/stack.sh down

stack-status:
	dev/stack.sh status

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy -p pricefront-edge --target wasm32-unknown-unknown -- -D warnings
	shellcheck dev/*.sh scripts/*.sh ops/prometheus/*.sh
