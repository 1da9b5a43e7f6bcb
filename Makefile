# hvguest make targets. `make test` is what CI runs (see .ci/run).
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 60s

.PHONY: all test race fuzz bench lint demo migrate migrate-long deps-check mlx-long netvsc-vf-long qemu image

all: lint test

# Quick tests: a few minutes on 2 cores.
test:
	$(GO) test -count=1 $(PKGS)

# The same with the race detector.
race:
	$(GO) test -race -count=1 $(PKGS)

# Every fuzz target, FUZZTIME each (default 60s). Go runs one target per
# invocation, so list them and run them in turn.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

# Benchmarks print ns/pkt and allocs/pkt where they move packets.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)

# The main job for a newcomer: the simulated host and a guest over VMBus.
demo:
	$(GO) run ./tools/hvsim demo

# The main job: live migrations under traffic, with a readable summary
# (ARGS="-json", ARGS="-plot migrate.png -migrations 20", ARGS="-surprise").
migrate:
	$(GO) run ./tools/hvsim migrate $(ARGS)

# The mlx VF's long hot-plug test: 100 hot removals (surprise and eject
# alternating) with 1,000,000 frames sent each time, then hot add again.
mlx-long:
	$(GO) test -count=1 -timeout 60m -run '^TestHotplugCycles$$' ./drivers/mlx -long -v

# hn's VF modes under migration: 500 VF attach/detach cycles (planned and
# surprise alternating) under continuous transmit, every frame accounted.
netvsc-vf-long:
	$(GO) test -count=1 -run '^TestVFMigrationCycles$$' ./drivers/netvsc -vfcycles 500 -v

# The migration acceptance at length: 20 planned migrations in transparent
# and in failover mode (nothing lost or duplicated, TCP checksums match),
# 10 surprise removals (loss within the VF's rings). About 20 s.
migrate-long:
	$(GO) test -count=1 -run TestMigrateLong -v ./tools/hvsim -long

# The guest image booted under QEMU (TCG) against hvsim serve over ivshmem:
# installs QEMU and extracts Debian's cloud kernel if needed (images/qemu.sh).
qemu:
	@kernel=$$(images/qemu.sh) && $(GO) test -count=1 -run '^TestQEMUBoot$$' -v ./images -kernel "$$kernel"

# The guest initramfs alone (boot it with any x86-64 kernel; see images/cmd/mkimage).
image:
	$(GO) run ./images/cmd/mkimage -o hvguest-initramfs.cpio
