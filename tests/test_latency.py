"""The latency lookup table (nasnb/latency.py): keys by hand, sums by hand, files, refusals.

No test depends on real timing: `time_module` is replaced by a fake clock that reads the block
off the module it is given, so each key gets a known number of "seconds".
"""
import json
import warnings

import pytest
import torch

import nasnb.latency as latency
from nasnb.errors import DamagedFileError, InvalidTypeError, InvalidValueError, UnknownNameError
from nasnb.latency import FixedParts, LatencyTable, LatencyTableMismatchError, LatencyTableWarning
from nasnb.spaces import MobileNetSpace, NB201Space
from nasnb.spaces.mobilenet_network import MBConv

FIXED_SECONDS = 0.5
OPS = ("3x3_MBConv1", "3x3_MBConv2", "5x5_MBConv1", "5x5_MBConv2")


def small_space():
    """stem 4 ch at stride 2, first block to 4; stage 0: 3 layers of 6 (stride 1), stage 1: 2 of 8 (stride 2)."""
    return MobileNetSpace(widths=(6, 8), depths=(3, 2), strides=(1, 2), stem_width=4, stem_stride=2,
                          first_width=4, head_width=8, kernels=(3, 5), expansions=(1, 2))


def fake_seconds(kernel, expansion, stride, c_in, height):
    return kernel * 1e6 + expansion * 1e5 + stride * 1e4 + c_in * 100 + height  # distinct per key, exact in floats


@pytest.fixture
def fake_clock(monkeypatch):
    calls = []

    def fake(module, input_shape, *, batch, device, warmup, repeats):
        calls.append((module, tuple(input_shape), torch.get_num_threads()))
        if isinstance(module, FixedParts):
            return FIXED_SECONDS
        assert isinstance(module, MBConv)
        assert module.depth_conv.conv.in_channels == input_shape[0] * module.expansion
        return fake_seconds(module.kernel_size, module.expansion, module.stride, input_shape[0], input_shape[1])

    monkeypatch.setattr(latency, "time_module", fake)
    return calls


# Input 7x7; the stem (3x3, stride 2, padding 1) makes it (7 - 1) // 2 + 1 = 4; stage 1's stride 2 makes 2.
HAND_SHAPES = [(4, 6, 1, 4, 4), (6, 6, 1, 4, 4), (6, 6, 1, 4, 4), (6, 8, 2, 4, 4), (8, 8, 1, 2, 2)]
HAND_KEYS = {(op, *shape) for op in OPS for shape in
             [(4, 6, 1, 4, 4), (6, 6, 1, 4, 4), (6, 8, 2, 4, 4), (8, 8, 1, 2, 2)]}  # layers 1, 2 share a shape


def test_layer_shapes_and_keys_of_a_small_space_by_hand():
    space = small_space()
    assert latency.layer_shapes(space, (1, 7, 7)) == HAND_SHAPES
    keys = latency.block_keys(space, (1, 7, 7))
    assert len(keys) == len(set(keys)) == 16
    assert set(keys) == HAND_KEYS
    assert not any(key[0] == "Zero" for key in keys)


def test_layer_shapes_are_what_the_built_network_feeds_its_blocks():
    space, seen = small_space(), []
    net = space.build(space.sample(3), in_channels=3).eval()
    for block in net.blocks:
        block.register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape[1:])))
    with torch.no_grad():
        net(torch.zeros(1, 3, 7, 7))
    shapes = latency.layer_shapes(space, (3, 7, 7))
    assert [(c_in, h, w) for c_in, _, _, h, w in shapes] == seen


def test_measure_times_each_key_once_with_the_asked_threads_then_restores_them(fake_clock):
    before = torch.get_num_threads()
    asked = 1 if before != 1 else 2
    table = LatencyTable.measure(small_space(), threads=asked, input_shape=(1, 7, 7), warmup=0, repeats=1)
    assert torch.get_num_threads() == before
    assert len(fake_clock) == 16 + 1  # 16 keys and the fixed parts, once each
    assert {threads for _, _, threads in fake_clock} == {asked}
    assert set(table.entries) == HAND_KEYS
    assert table.entries[("5x5_MBConv2", 6, 8, 2, 4, 4)] == 5e6 + 2e5 + 2e4 + 600 + 4
    assert table.fixed == FIXED_SECONDS
    assert table.meta["threads"] == asked and table.meta["method"] == {"timing": "absolute", "warmup": 0, "repeats": 1,
                                                                        "rounds": 1, "statistic": "median"}


def test_rounds_time_every_key_in_turn_and_keep_its_fastest_round(monkeypatch):
    # A noisy clock: round r multiplies every latency by (1, 3, 0.5)[r] for a key of even kernel
    # index, by (2, 1, 4)[r] otherwise, so the fastest round differs between keys.
    calls = []

    def noisy(module, input_shape, *, batch, device, warmup, repeats):
        calls.append(module)
        r = sum(c is module for c in calls) - 1
        if isinstance(module, FixedParts):
            return FIXED_SECONDS * (5, 2, 3)[r]
        base = fake_seconds(module.kernel_size, module.expansion, module.stride, input_shape[0], input_shape[1])
        return base * ((1, 3, 0.5) if module.kernel_size == 3 else (2, 1, 4))[r]

    monkeypatch.setattr(latency, "time_module", noisy)
    table = LatencyTable.measure(small_space(), input_shape=(1, 7, 7), rounds=3)
    assert len(calls) == 3 * (16 + 1)
    assert len({id(m) for m in calls[:17]}) == 17 and [id(m) for m in calls[:17]] == [id(m) for m in calls[17:34]]
    assert table.entries[("3x3_MBConv2", 4, 6, 1, 4, 4)] == 0.5 * fake_seconds(3, 2, 1, 4, 4)
    assert table.entries[("5x5_MBConv2", 6, 8, 2, 4, 4)] == 1 * fake_seconds(5, 2, 2, 6, 4)
    assert table.fixed == 2 * FIXED_SECONDS
    assert table.meta["method"] == {"timing": "absolute", "warmup": 10, "repeats": 50, "rounds": 3,
                                   "statistic": "min over rounds of the median"}
    with pytest.raises(ValueError, match="rounds.*0"):
        LatencyTable.measure(small_space(), input_shape=(1, 7, 7), rounds=0)


def test_measure_restores_threads_when_a_measurement_fails(monkeypatch):
    before = torch.get_num_threads()

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(latency, "time_module", broken)
    with pytest.raises(RuntimeError):
        LatencyTable.measure(small_space(), threads=before + 1, input_shape=(1, 7, 7))
    assert torch.get_num_threads() == before


def test_predict_is_the_fixed_part_plus_each_layers_entry_read_by_hand(fake_clock):
    table = LatencyTable.measure(small_space(), input_shape=(1, 7, 7))
    arch = ("3x3_MBConv2", "5x5_MBConv1", "Zero", "5x5_MBConv2", "3x3_MBConv1")
    by_hand = (FIXED_SECONDS
               + fake_seconds(3, 2, 1, 4, 4)  # layer 0: 4 -> 6 at 4x4
               + fake_seconds(5, 1, 1, 6, 4)  # layer 1: 6 -> 6 at 4x4
               + 0                            # layer 2: Zero
               + fake_seconds(5, 2, 2, 6, 4)  # layer 3: 6 -> 8, stride 2, at 4x4
               + fake_seconds(3, 1, 1, 8, 2))  # layer 4: 8 -> 8 at 2x2
    assert table.predict(arch) == by_hand
    assert table.predict(list(arch)) == by_hand


def test_zero_costs_nothing(fake_clock):
    table = LatencyTable.measure(small_space(), input_shape=(1, 7, 7))
    with_block = ("3x3_MBConv1", "5x5_MBConv2", "3x3_MBConv1", "3x3_MBConv1", "5x5_MBConv1")
    skipped = ("3x3_MBConv1", "Zero", "3x3_MBConv1", "3x3_MBConv1", "Zero")
    assert table.predict(with_block) - table.predict(skipped) == fake_seconds(5, 2, 1, 6, 4) + fake_seconds(5, 1, 1, 8, 2)
    only_forced = ("3x3_MBConv1", "Zero", "Zero", "3x3_MBConv1", "Zero")  # layers 0 and 3 change the shape
    assert table.predict(only_forced) == FIXED_SECONDS + fake_seconds(3, 1, 1, 4, 4) + fake_seconds(3, 1, 2, 6, 4)


def test_saved_table_loads_equal_and_is_plain_json(fake_clock, tmp_path):
    table = LatencyTable.measure(small_space(), input_shape=(1, 7, 7), warmup=3, repeats=7, batch=2)
    path = tmp_path / "lut.json"
    table.save(path)
    data = json.loads(path.read_text())
    assert data["device"] == "cpu" and data["threads"] == 1 and data["batch"] == 2
    assert data["torch"] == torch.__version__ and data["input_shape"] == [1, 7, 7]
    assert data["method"] == {"timing": "absolute", "warmup": 3, "repeats": 7, "rounds": 1, "statistic": "median"}
    assert len(data["entries"]) == 16
    loaded = LatencyTable.load(path, device="cpu", threads=1)
    assert loaded == table
    arch = small_space().sample(0)
    assert loaded.predict(arch) == table.predict(arch)


def _edited(tmp_path, table, **changes):
    path = tmp_path / "lut.json"
    table.save(path)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


def test_a_table_of_another_device_or_thread_count_is_refused(fake_clock, tmp_path):
    table = LatencyTable.measure(small_space(), input_shape=(1, 7, 7), threads=1)
    path = _edited(tmp_path, table, device_name="Some Other CPU 9000")
    with pytest.raises(LatencyTableMismatchError, match="Some Other CPU 9000"):
        LatencyTable.load(path, device="cpu")
    assert LatencyTable.load(path).meta["device_name"] == "Some Other CPU 9000"  # no device named: no check
    path = _edited(tmp_path, table, device="cuda:0", device_name="NVIDIA H200")
    with pytest.raises(LatencyTableMismatchError, match="cuda:0"):
        LatencyTable.load(path, device="cpu")
    path = _edited(tmp_path, table)
    with pytest.raises(LatencyTableMismatchError, match="threads=1.*threads=4"):
        LatencyTable.load(path, device="cpu", threads=4)
    assert LatencyTable.load(path, device="cpu", threads=1, space=small_space()) == table
    with pytest.raises(LatencyTableMismatchError, match="for MobileNetSpace"):
        LatencyTable.load(path, space=MobileNetSpace())


def test_a_table_of_another_torch_version_warns(fake_clock, tmp_path):
    table = LatencyTable.measure(small_space(), input_shape=(1, 7, 7))
    with pytest.warns(LatencyTableWarning, match="torch 1.0.0"):
        LatencyTable.load(_edited(tmp_path, table, torch="1.0.0"), device="cpu", threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LatencyTable.load(_edited(tmp_path, table), device="cpu", threads=1)


def test_bad_arguments_are_refused_naming_them(fake_clock, tmp_path):
    space = small_space()
    with pytest.raises(InvalidTypeError, match="MobileNetSpace"):
        LatencyTable.measure(NB201Space())
    for kwargs, name in [(dict(threads=0), "threads"), (dict(repeats=0), "repeats"), (dict(warmup=-1), "warmup"),
                         (dict(batch=True), "batch"), (dict(input_shape=(1, 8)), "input_shape"),
                         (dict(input_shape=(1, 0, 8)), "input_shape"), (dict(device="tpu"), "device")]:
        with pytest.raises((InvalidValueError, InvalidTypeError), match=name):
            LatencyTable.measure(space, **kwargs)
    table = LatencyTable.measure(space, input_shape=(1, 7, 7))
    with pytest.raises(InvalidValueError, match="5 layers"):
        table.predict(("3x3_MBConv1",) * 4)
    with pytest.raises(InvalidValueError, match="layer 3.*7x7_MBConv6"):
        table.predict(("3x3_MBConv1",) * 3 + ("7x7_MBConv6", "3x3_MBConv1"))
    with pytest.raises(InvalidValueError, match="layer 0.*'Zero'"):  # 4 -> 6 channels: no Zero there
        table.predict(("Zero",) + ("3x3_MBConv1",) * 4)
    with pytest.raises(InvalidTypeError, match="space.parse"):
        table.predict(space.format(("3x3_MBConv1",) * 5))
    with pytest.raises(InvalidValueError, match="threads"):
        LatencyTable.load(tmp_path / "x.json", threads=0)


def test_damaged_files_are_refused(fake_clock, tmp_path):
    table = LatencyTable.measure(small_space(), input_shape=(1, 7, 7))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DamagedFileError, match="not JSON"):
        LatencyTable.load(bad)
    bad.write_text(json.dumps({"entries": []}))
    with pytest.raises(DamagedFileError, match="format"):
        LatencyTable.load(bad)
    with pytest.raises(DamagedFileError, match="seconds"):
        LatencyTable.load(_edited(tmp_path, table, fixed=-1.0))
    with pytest.raises(DamagedFileError, match="malformed"):
        LatencyTable.load(_edited(tmp_path, table, entries=[["3x3_MBConv1", 4, 6]]))


def test_a_real_measurement_of_the_default_space_fills_every_key():
    space = MobileNetSpace()
    table = LatencyTable.measure(space, warmup=0, repeats=1)
    assert set(table.entries) == set(latency.block_keys(space, (1, 8, 8)))
    assert len(table.entries) == 4 * 6  # 4 distinct layer shapes x 6 MBConv ops
    assert all(seconds > 0 for seconds in table.entries.values()) and table.fixed > 0
    assert table.predict(space.sample(0)) > table.fixed


# ---------------------------------------------------------------- relative (differential) timing

class SpellClock:
    """A fake `time` for nasnb.cost: each forward pass advances it by the module's cost times the
    machine's slowness, which changes every 5 passes (spells of 1, 3, 0.5, 2.5, 1.5, ...)."""

    SPEEDS = (1.0, 3.0, 0.5, 2.5, 1.5, 2.0, 0.75)

    def __init__(self):
        self.now, self.passes = 0.0, 0

    def perf_counter(self):
        return self.now

    thread_time = perf_counter  # clock="thread" reads the same fake time

    def run(self, cost):
        self.now += cost * self.SPEEDS[(self.passes // 5) % len(self.SPEEDS)]
        self.passes += 1


class Costly(torch.nn.Module):
    def __init__(self, clock, cost):
        super().__init__()
        self.clock, self.cost, self.calls = clock, cost, 0
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        self.clock.run(self.cost)
        self.calls += 1
        return x


@pytest.mark.parametrize("clock_name", ["wall", "thread"])
def test_relative_timing_cancels_a_machine_speed_that_changes_between_passes(monkeypatch, clock_name):
    import nasnb.cost as cost
    clock = SpellClock()
    monkeypatch.setattr(cost, "time", clock)
    k = 7.0
    model, reference = Costly(clock, k * 0.002), Costly(clock, 0.002)
    model.train(), reference.eval()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # clock="thread" needs one torch thread
    try:
        result = cost.measure_relative_latency(model, (1, 8, 8), reference, (4, 2, 2), device="cpu", warmup=3,
                                               repeats=40, clock=clock_name)
    finally:
        torch.set_num_threads(previous)
    assert model.calls == reference.calls == 3 + 40  # passes alternate: model, reference, model, ...
    # Spells of 5 passes: one pair in 5 straddles a change of speed; the median ignores them.
    assert result["ratio"] == pytest.approx(k, rel=1e-9)
    assert model.training and not reference.training  # modes restored
    # The absolute clock reads the spells: the model's median is k x 2 ms times some slowness, not k x 2 ms.
    absolute = cost.measure_latency(model, (1, 8, 8), device="cpu", warmup=0, repeats=40)["median"]
    assert absolute != pytest.approx(k * 0.002, rel=0.05)
    speeds_seen = sorted(SpellClock.SPEEDS)
    assert min(speeds_seen) * k * 0.002 <= result["median"] <= max(speeds_seen) * k * 0.002


def test_relative_timing_refuses_bad_arguments_naming_them(fake_clock):
    import nasnb.cost as cost
    block = MBConv(4, 4, 3, 1, 1)
    for kwargs, name in [(dict(reference="MBConv"), "reference"), (dict(reference_shape=(4, 0, 2)), "reference_shape"),
                         (dict(repeats=0), "repeats"), (dict(warmup=-1), "warmup"), (dict(batch_size=0), "batch_size"),
                         (dict(input_shape=(4, 0, 2)), "input_shape"), (dict(clock="cpu"), "clock")]:
        args = dict(model=block, input_shape=(4, 2, 2), reference=block, reference_shape=(4, 2, 2), device="cpu")
        args.update(kwargs)
        with pytest.raises((InvalidValueError, InvalidTypeError, UnknownNameError), match=name):
            cost.measure_relative_latency(**args)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(InvalidValueError, match="clock='thread'.*one torch thread"):
            cost.measure_relative_latency(block, (4, 2, 2), block, (4, 2, 2), device="cpu", clock="thread")
    finally:
        torch.set_num_threads(previous)
    with pytest.raises(InvalidValueError, match="clock='thread' is an option of relative timing"):
        LatencyTable.measure(small_space(), input_shape=(1, 7, 7), clock="thread")
    with pytest.raises(InvalidValueError, match="clock='thread'.*threads=1, not cpu with threads=2"):
        LatencyTable.measure(small_space(), input_shape=(1, 7, 7), timing="relative", clock="thread", threads=2)


# The fake relative clock: a block's ratio is its fake seconds over the reference's, times a
# per-round error (1, 1.2, 0.9)[r] that the median over rounds removes; the reference's median
# seconds read 3, 2, 4 (x its fake seconds) in the three rounds: its fastest is 2x.
ROUND_ERROR, REFERENCE_SLOWNESS = (1.0, 1.2, 0.9), (3.0, 2.0, 4.0)
REFERENCE_BY_HAND = ("3x3_MBConv1", 6, 8, 2, 4, 4)  # the 9th of the 16 keys in layer order: index 16 // 2


NETWORK_SECONDS = 0.25  # any whole network


def _seconds(module, input_shape):
    if isinstance(module, FixedParts):
        return FIXED_SECONDS
    if not isinstance(module, MBConv):
        return NETWORK_SECONDS
    return fake_seconds(module.kernel_size, module.expansion, module.stride, input_shape[0], input_shape[1])


@pytest.fixture
def fake_relative_clock(monkeypatch):
    calls = []

    def fake(module, input_shape, reference, reference_shape, *, batch, device, warmup, repeats, clock):
        assert clock == "wall"
        calls.append(module)
        r = (sum(c is module for c in calls) - 1) % 3
        ref_seconds = _seconds(reference, reference_shape)
        return _seconds(module, input_shape) / ref_seconds * ROUND_ERROR[r], ref_seconds * REFERENCE_SLOWNESS[r]

    monkeypatch.setattr(latency, "time_relative", fake)
    return calls


def test_relative_table_holds_median_ratio_times_fastest_reference_seconds(fake_relative_clock):
    space = small_space()
    assert latency.reference_key(space, (1, 7, 7)) == REFERENCE_BY_HAND
    table = LatencyTable.measure(space, input_shape=(1, 7, 7), rounds=3, timing="relative")
    assert len(fake_relative_clock) == 3 * (16 + 1)
    reference_seconds = 2.0 * fake_seconds(3, 1, 2, 6, 4)
    key = ("5x5_MBConv2", 4, 6, 1, 4, 4)
    ratio = fake_seconds(5, 2, 1, 4, 4) / fake_seconds(3, 1, 2, 6, 4)  # the median of (1, 1.2, 0.9) x ratio
    assert table.entries[key] == pytest.approx(ratio * reference_seconds, rel=1e-12)
    assert table.fixed == pytest.approx(FIXED_SECONDS * 2.0, rel=1e-12)
    method = table.meta["method"]
    assert table.timing == method["timing"] == "relative" and method["rounds"] == 3
    assert method["reference"] == {"block": list(REFERENCE_BY_HAND), "seconds": reference_seconds, "clock": "wall"}
    # a network is timed the same way: median ratio over rounds x the recorded reference seconds
    net = space.build(space.sample(1), in_channels=1)
    fake_relative_clock.clear()
    seconds = table.measure_network(net, rounds=3)
    assert len(fake_relative_clock) == 3
    assert seconds == pytest.approx(NETWORK_SECONDS / fake_seconds(3, 1, 2, 6, 4) * reference_seconds, rel=1e-12)


def test_measure_network_with_absolute_timing_keeps_the_fastest_round(fake_clock, monkeypatch):
    table = LatencyTable.measure(small_space(), input_shape=(1, 7, 7))
    readings, asked = iter([0.3, 0.1, 0.2]), []

    def fake(module, input_shape, *, batch, device, warmup, repeats):
        asked.append((warmup, repeats))
        return next(readings)

    monkeypatch.setattr(latency, "time_module", fake)
    assert table.measure_network(torch.nn.Identity(), rounds=3, repeats=7) == 0.1
    assert asked == [(10, 7)] * 3  # the table's warm-up (the default 10), the asked repeats
    with pytest.raises(InvalidValueError, match="rounds"):
        table.measure_network(torch.nn.Identity(), rounds=0)
    with pytest.raises(InvalidValueError, match="warmup"):
        table.measure_network(torch.nn.Identity(), warmup=-1)


def test_relative_meta_survives_save_and_load_and_timing_is_checked(fake_relative_clock, fake_clock, tmp_path):
    table = LatencyTable.measure(small_space(), input_shape=(1, 7, 7), rounds=3, timing="relative")
    path = tmp_path / "lut.json"
    table.save(path)
    assert json.loads(path.read_text())["method"]["reference"]["block"] == list(REFERENCE_BY_HAND)
    loaded = LatencyTable.load(path, device="cpu", threads=1, timing="relative")
    assert loaded == table and loaded.timing == "relative"
    with pytest.raises(LatencyTableMismatchError, match="timing='relative'.*timing='absolute'"):
        LatencyTable.load(path, timing="absolute")
    with pytest.raises(UnknownNameError, match="timing"):
        LatencyTable.load(path, timing="differential")
    with pytest.raises(UnknownNameError, match="timing"):
        LatencyTable.measure(small_space(), input_shape=(1, 7, 7), timing="differential")
    absolute = LatencyTable.measure(small_space(), input_shape=(1, 7, 7))
    method = dict(absolute.meta["method"])
    del method["timing"]  # a table saved before timing was recorded
    old = _edited(tmp_path, absolute, method=method)
    assert LatencyTable.load(old, timing="absolute").timing == "absolute"
    with pytest.raises(LatencyTableMismatchError, match="absolute"):
        LatencyTable.load(old, timing="relative")


def test_a_real_relative_measurement_of_the_default_space_fills_every_key():
    space = MobileNetSpace()
    table = LatencyTable.measure(space, warmup=0, repeats=1, timing="relative")
    assert set(table.entries) == set(latency.block_keys(space, (1, 8, 8)))
    assert all(seconds > 0 for seconds in table.entries.values()) and table.fixed > 0
    assert table.meta["method"]["reference"]["seconds"] > 0
    assert table.measure_network(space.build(space.sample(0)), rounds=1) > 0


def test_the_repr_says_how_the_table_was_timed():
    meta = dict(device="cpu", device_name="test", threads=1, batch=1, input_shape=[1, 8, 8])
    assert repr(LatencyTable({}, 0.0, [], meta)).endswith("timing='absolute')")  # no method: an old table
    relative = LatencyTable({}, 0.0, [], {**meta, "method": {"timing": "relative"}})
    assert repr(relative).endswith("timing='relative')")
