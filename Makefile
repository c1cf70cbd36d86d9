.PHONY: test demo bench
test:
	./scripts/test.sh
demo:
	./scripts/demo.sh
bench:
	.venv/bin/python benchmarks/reward_bench.py
