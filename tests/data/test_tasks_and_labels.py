"""Language labels: task files, the task sampler, instruction history and label validation."""

from __future__ import annotations

from collections import Counter

import pytest

from vla_studio.core.config import ConfigError
from vla_studio.data.labels import EpisodeLabels, InstructionHistory, LabelError
from vla_studio.data.tasks import TaskSampler, load_task_file, task_id_for


def test_a_text_task_file_lists_instructions_with_paraphrases(tmp_path):
    path = tmp_path / "tasks.txt"
    path.write_text("# kitchen tasks\npick up the red cube | grab the red block\n\n"
                    "  open   the drawer  # the top one\n", encoding="utf-8")
    tf = load_task_file(path)
    assert tf.mode == "sequence"
    assert [(t.instruction, t.paraphrases, t.task) for t in tf.tasks] == [
        ("pick up the red cube", ("grab the red block",), "pick_up_the_red_cube"),
        ("open the drawer", (), "open_the_drawer")]


def test_toml_and_json_task_files_carry_weights_and_modes(tmp_path):
    toml = tmp_path / "tasks.toml"
    toml.write_text('mode = "weighted"\nseed = 3\n[[tasks]]\ninstruction = "stack the cups"\n'
                    'paraphrases = ["put one cup on the other"]\nweight = 3\ntask = "stack"\n'
                    '[[tasks]]\ninstruction = "wipe the table"\n', encoding="utf-8")
    tf = load_task_file(toml)
    assert tf.mode == "weighted" and tf.seed == 3 and tf.tasks[0].weight == 3.0
    assert tf.tasks[0].task == "stack" and tf.tasks[1].task == "wipe_the_table"
    js = tmp_path / "tasks.json"
    js.write_text('{"mode": "balanced", "tasks": [{"instruction": "a"}, {"instruction": "b"}]}')
    assert load_task_file(js).mode == "balanced"


@pytest.mark.parametrize("name, text, message", [
    ("t.toml", 'mode = "shuffle"\n[[tasks]]\ninstruction = "a"\n', "mode"),
    ("t.toml", '[[tasks]]\ninstruction = "a"\nweight = -1\n', "tasks"),
    ("t.toml", '[[tasks]]\ninstruction = "a"\ncolour = "red"\n', "unknown key"),
    ("t.toml", 'tasks = []\n', "no tasks"),
    ("t.toml", 'tasks = [\n', "not valid TOML"),
    ("t.txt", "# nothing here\n", "no tasks"),
    ("t.txt", " | a paraphrase without an instruction\n", "line 1"),
])
def test_bad_task_files_are_reported_with_the_file_and_the_fix(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        load_task_file(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_task_file(tmp_path / "missing.txt")


def write(tmp_path, text: str):
    path = tmp_path / "tasks.toml"
    path.write_text(text, encoding="utf-8")
    return load_task_file(path)


def test_sequence_mode_cycles_in_file_order(tmp_path):
    sampler = TaskSampler(write(tmp_path, '[[tasks]]\ninstruction = "a"\n[[tasks]]\ninstruction = "b"\n'))
    assert [sampler.next().instruction for _ in range(5)] == ["a", "b", "a", "b", "a"]


def test_weighted_mode_follows_the_weights_and_is_reproducible(tmp_path):
    text = 'mode = "weighted"\nseed = 1\n[[tasks]]\ninstruction = "a"\nweight = 3\n' \
           '[[tasks]]\ninstruction = "b"\nweight = 1\n[[tasks]]\ninstruction = "never"\nweight = 0\n'
    draws = [TaskSampler(write(tmp_path, text)).next().instruction for _ in range(3)]
    assert len(set(draws)) == 1  # same seed, same first draw
    sampler = TaskSampler(write(tmp_path, text))
    counts = Counter(sampler.next().instruction for _ in range(4000))
    assert counts["never"] == 0
    assert 2.6 < counts["a"] / counts["b"] < 3.4


def test_balanced_mode_fills_the_dataset_evenly_by_weight(tmp_path):
    text = 'mode = "balanced"\n[[tasks]]\ninstruction = "a"\nweight = 2\n' \
           '[[tasks]]\ninstruction = "b"\n'
    sampler = TaskSampler(write(tmp_path, text), done={"a": 4, "b": 1})
    assert sampler.next().instruction == "b"  # 4/2 = 2 > 1/1
    sampler.mark_done("b")
    sampler.mark_done("b")
    assert sampler.next().instruction == "a"  # 2 == 3? no: 4/2 = 2 < 3/1
    sampler.mark_undone("b")
    sampler.mark_undone("b")
    assert sampler.next().instruction == "b"
    assert sampler.done_counts() == {"a": 4, "b": 1}


def test_instruction_history_completes_by_prefix_then_by_use(tmp_path):
    path = tmp_path / "instructions.json"
    history = InstructionHistory(path)
    for text in ("pick up the red cube", "pick up the red cube", "pick up the blue cube",
                 "place the cube in the bowl"):
        history.add(text)
    assert history.complete("pick") == ["pick up the red cube", "pick up the blue cube"]
    # same use count: the most recent first
    assert history.complete("cube") == ["pick up the red cube", "place the cube in the bowl",
                                        "pick up the blue cube"]
    assert history.complete("PICK UP THE B") == ["pick up the blue cube"]
    assert history.recent(1) == ["place the cube in the bowl"]
    again = InstructionHistory(path)  # persisted
    assert again.count("pick  up the red   cube") == 2
    small = InstructionHistory(tmp_path / "small.json", limit=2)
    for text in ("a", "b", "c"):
        small.add(text)
    assert sorted(small.recent()) == ["b", "c"]


def test_an_unreadable_history_starts_afresh(tmp_path):
    path = tmp_path / "instructions.json"
    path.write_text("{broken", encoding="utf-8")
    history = InstructionHistory(path)
    assert history.recent() == []
    history.add("wave")
    assert InstructionHistory(path).recent() == ["wave"]


def test_labels_are_cleaned_and_an_instruction_is_required():
    labels = EpisodeLabels("  pick up   the cube ", ("pick up the cube", " lift  it ", ""),
                           operator="ada").validated()
    assert labels.instruction == "pick up the cube" and labels.paraphrases == ("lift it",)
    assert labels.instructions == ["pick up the cube", "lift it"]
    with pytest.raises(LabelError, match="needs a language instruction"):
        EpisodeLabels("   ").validated()
    with pytest.raises(LabelError, match="longer than"):
        EpisodeLabels("x" * 600).validated()
    assert task_id_for("Pick up the RED cube!") == "pick_up_the_red_cube"
