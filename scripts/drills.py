"""Re-run the hardening drills (issue 20): one line per case with its verdict.

Each case of the drill table (a hostile teacher, a torn file, a wrong config,
real-world data) is reproduced by tests in the suite; this script runs exactly
those tests, once, and prints whether each case now holds. The tests run the
real thing: the OpenAI and Anthropic SDKs against `tripost serve-teacher` on
loopback, the CLI in-process and as a subprocess, the tiny student.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/drills.py            # all cases
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/drills.py --case 5   # one case

Exit status 0 when every case held, 1 otherwise (the failing tests' names are
printed under their case).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVE = "tests/test_serve_teacher.py"
BOUNDS = "tests/test_serve_bounds.py"
CONFIG = "tests/test_hardening_config.py"
# (case, what failed at 1fa067d or, from case 14, the issue named, the tests that reproduce it). A node id
# without parameters selects all of its parametrized cases.
CASES: list[tuple[int, str, list[str]]] = [
    (1, "rejected teacher answers are never cached", [
        f"{SERVE}::test_rejected_answers_are_not_cached_and_a_healthy_rerun_asks_again",
        f"{SERVE}::test_a_cached_rejection_from_an_older_version_is_asked_again",
        f"{SERVE}::test_proxy_caches_only_answers_that_validate",
        "tests/test_teacher.py::test_cache_drops_entries_the_caller_refuses",
    ]),
    (2, "a malformed 200 response is one counted rejection", [
        f"{SERVE}::test_malformed_200_is_one_rejection_not_an_abort",
        f"{SERVE}::test_teach_command_counts_malformed_answers",
        "tests/test_teacher.py::test_a_malformed_answer_is_not_fatal",
    ]),
    (3, "a schema-invalid log record is a file:line error", [
        "tests/test_hardening_logs.py::test_schema_invalid_record_is_named_by_file_and_line",
        "tests/test_hardening_logs.py::test_buffer_and_replay_give_one_line_then_skip_it",
        "tests/test_hardening_logs.py::test_no_traceback_from_a_subprocess",
    ]),
    (4, "--data type errors are one line", [
        "tests/test_qa_external.py::test_wrong_field_types_are_one_error_naming_the_line",
        "tests/test_qa_external.py::test_cli_reports_a_wrong_type_in_one_line",
        "tests/test_qa_external.py::test_qa_keeps_number_options_as_text",
    ]),
    (5, "input sizes are bounded, parsing linear, prompts cut to context", [
        "tests/test_qa_external.py::test_field_sizes_are_bounded",
        "tests/test_qa_external.py::test_every_family_bounds_its_question",
        "tests/test_task_arithmetic.py::test_question_with_max_numbers_is_solved_and_one_more_is_refused",
        "tests/test_task_arithmetic.py::test_long_question_is_refused_before_parsing",
        "tests/test_task_arithmetic.py::test_overlong_rationale_is_flagged_not_read",
        "tests/test_task_arithmetic.py::test_parsing_is_linear_and_bounded_in_memory",
        "tests/test_engine.py::test_a_prompt_longer_than_the_context_is_cut_and_counted",
    ]),
    (6, "config type errors are one line naming the key", [
        "tests/test_hardening_config.py::test_run_config_file_type_errors_are_one_line",
        "tests/test_hardening_config.py::test_non_utf8_config_file_is_one_line",
        "tests/test_hardening_config.py::test_run_override_errors_are_one_line_before_anything_is_written",
        "tests/test_hardening_config.py::test_train_config_type_errors_name_the_key",
    ]),
    (7, "a rejected config does not poison the run folder", [
        "tests/test_hardening_config.py::test_a_rejected_config_does_not_poison_the_run_folder",
        "tests/test_hardening_config.py::test_a_config_made_in_code_is_checked_before_it_is_written",
        "tests/test_hardening_config.py::test_a_run_folder_with_nothing_but_its_config_takes_a_corrected_config",
    ]),
    (8, "--out that is a file or unwritable is one line; eval does not overwrite", [
        "tests/test_hardening_config.py::test_out_that_cannot_be_a_folder_is_one_line",
        "tests/test_hardening_config.py::test_eval_does_not_overwrite_a_result_without_force",
    ]),
    (9, "errors name only flags that exist", [
        "tests/test_hardening_logs.py::test_collect_on_a_corrupt_log_names_no_missing_flag",
        "tests/test_hardening_logs.py::test_run_on_a_corrupt_log_names_no_missing_flag",
    ]),
    (10, "a batch resumed after a kill gives a clean run's records", [
        "tests/test_hardening_collect.py::test_collect_resumed_mid_batch_writes_the_records_of_a_clean_run",
        "tests/test_hardening_collect.py::test_rejection_resumed_mid_batch_writes_the_records_of_a_clean_run",
        "tests/test_hardening_collect.py::test_guided_resumed_mid_batch_writes_the_records_of_a_clean_run",
    ]),
    (11, "serve-teacher: token, loopback warning, upstream statuses, disconnects", [
        f"{SERVE}::test_requests_without_the_token_are_refused",
        f"{SERVE}::test_proxy_passes_upstream_statuses_through_and_refuses_strangers",
        f"{SERVE}::test_a_client_that_goes_away_is_one_line_not_a_500",
        f"{SERVE}::test_serve_teacher_command_runs_as_a_process",
        f"{SERVE}::test_serve_teacher_token_from_the_environment_and_a_warning_for_non_loopback",
    ]),
    (12, "real word lists (apostrophes, periods) sort and check", [
        "tests/test_task_word_sorting.py::test_real_world_words_are_sorted_in_string_order",
        "tests/test_task_word_sorting.py::test_a_word_that_ran_out_comes_before_punctuation",
        "tests/test_task_word_sorting.py::test_answers_with_periods_and_apostrophes_stay_exact",
        "tests/test_task_word_sorting.py::test_external_file_with_real_words_loads",
        "tests/test_task_word_sorting.py::test_any_token_list_sorts_checks_and_teaches",
        "tests/test_task_word_sorting.py::test_garbled_rationale_of_real_words_never_raises",
    ]),
    (13, "an unreachable teacher stops the run early, keeping what was collected", [
        "tests/test_hardening_collect.py::test_unreachable_teacher_stops_collection_keeping_what_was_collected",
        "tests/test_hardening_collect.py::test_unreachable_teacher_stops_the_run_before_its_collect_stage_is_done",
    ]),
    (14, "--data rows without a split are hash-split; test rows never train", [
        "tests/test_data_splits.py::test_tasks_sample_splits_of_a_split_less_file_are_disjoint_and_cover_it",
        "tests/test_data_splits.py::test_a_rows_own_split_wins_and_a_bad_one_is_one_line",
        "tests/test_data_splits.py::test_run_on_a_data_file_never_trains_on_its_evaluation_problems",
        "tests/test_tasks_select.py::test_data_rows_of_other_splits_are_never_selected",
    ]),
    (15, "serve-teacher: token, then length (400/411/413), then a timed read; capped connections", [
        f"{BOUNDS}::test_teacher_answers_a_huge_declared_body_413_without_reading_it",
        f"{BOUNDS}::test_teacher_checks_the_token_before_the_declared_length",
        f"{BOUNDS}::test_teacher_refuses_negative_or_non_numeric_lengths_with_400",
        f"{BOUNDS}::test_teacher_sends_100_continue_only_when_it_will_read_the_body",
        f"{BOUNDS}::test_a_body_that_does_not_arrive_in_time_is_408_and_an_idle_connection_is_closed",
        f"{BOUNDS}::test_connections_over_the_cap_are_answered_503_and_a_freed_slot_serves_again",
    ]),
    (16, "serve-student: bounded reads and work, gone clients cancelled, refused adapters undone", [
        f"{BOUNDS}::test_student_lengths_are_checked_after_the_token_and_before_reading",
        f"{BOUNDS}::test_student_bounds_n_max_tokens_and_prompt_count",
        f"{BOUNDS}::test_a_request_whose_client_went_away_stops_and_frees_the_model",
        f"{BOUNDS}::test_a_refused_adapter_load_leaves_the_served_model_unchanged",
    ]),
    (17, "checkpoints are whole or absent, a torn one is skipped; SIGTERM is one line (143)", [
        "tests/test_checkpoints.py::test_the_newest_whole_checkpoint_wins_and_the_torn_ones_are_named",
        "tests/test_checkpoints.py::test_a_torn_newest_checkpoint_is_skipped_with_one_line",
        "tests/test_checkpoints.py::test_a_save_cut_short_leaves_no_checkpoint_behind",
        "tests/test_checkpoints.py::test_sigterm_ends_a_verb_with_one_line_as_ctrl_c_does",
        "tests/test_checkpoints.py::test_sigterm_to_tripost_train_is_one_line_and_the_rerun_resumes",
    ]),
    (18, "teacher answers bounded by max_tokens: too_long, counted, not cached or logged, not read", [
        "tests/test_teacher_bounds.py::test_the_requester_refuses_an_over_long_answer_and_never_caches_it",
        "tests/test_teacher_bounds.py::test_a_padded_answer_is_too_long_counted_and_not_cached",
        "tests/test_teacher_bounds.py::test_a_collected_record_never_holds_the_padding",
        "tests/test_teacher_bounds.py::test_a_100_mb_answer_is_not_read",
    ]),
    (19, "one writer per run folder and collect --out: the second is one line naming the holder", [
        "tests/test_hardening_collect.py::test_one_writer_per_run_folder_and_collect_out",
    ]),
    (20, "what stages would find is checked before anything is written; empty files do not poison --out", [
        f"{CONFIG}::test_a_run_that_cannot_get_through_its_stages_is_refused_before_anything_is_written",
        f"{CONFIG}::test_teachers_and_sources_that_can_work_on_qa_pass_the_checks",
        f"{CONFIG}::test_a_training_device_this_machine_lacks_is_refused_before_anything_is_written",
        f"{CONFIG}::test_cuda_asked_for_without_cuda_is_one_line_up_front",
        f"{CONFIG}::test_a_folder_a_failed_first_stage_left_takes_the_corrected_command",
    ]),
    (21, "full disk, lone surrogates, deep TOML: one line each; records kept, no torn dataset", [
        "tests/test_hardening_disk.py::test_collect_on_a_full_disk_is_one_line_and_keeps_every_record",
        "tests/test_hardening_disk.py::test_buffer_on_a_full_disk_is_one_line_and_leaves_no_dataset",
        "tests/test_qa_external.py::test_a_lone_surrogate_is_one_line_naming_the_row",
        "tests/test_qa_external.py::test_a_record_from_tasks_sample_is_checked_for_surrogates_too",
        f"{CONFIG}::test_a_deeply_nested_toml_value_is_one_line",
    ]),
    (22, "every error clips the values it quotes", [
        f"{CONFIG}::test_an_error_quotes_a_huge_value_clipped",
        f"{CONFIG}::test_a_tripost_error_bounds_its_own_message",
    ]),
    (23, "a Hub that accepts and never answers ends with one line", [
        "tests/test_student_hub.py::test_a_hub_that_accepts_and_never_answers_ends_with_one_line",
    ]),
]


def _base(nodeid: str) -> str:
    """`file.py::test_x[param]` -> `file.py::test_x`."""
    return nodeid.split("[", 1)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", type=int, action="append", help="run only this case (repeatable)")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.case or c[0] in args.case]
    if not cases:
        print(f"drills: no case {args.case}; cases are 1-{len(CASES)}", file=sys.stderr)
        return 2
    nodes = [n for _, _, ns in cases for n in ns]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "drills.xml"
        print(f"drills: running {len(nodes)} tests for {len(cases)} cases ...", flush=True)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *nodes],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        if not xml.is_file():
            print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
            print("drills: pytest did not run (see above)", file=sys.stderr)
            return 2
        # Outcome per test function: failed if any of its parametrized cases failed.
        outcome: dict[str, list[str]] = {}
        for tc in ET.parse(xml).getroot().iter("testcase"):
            path = tc.get("classname", "").replace(".", "/") + ".py"
            node = f"{path}::{tc.get('name', '')}"
            failed = any(child.tag in ("failure", "error") for child in tc)
            skipped = any(child.tag == "skipped" for child in tc)
            outcome.setdefault(_base(node), []).append("failed" if failed else "skipped" if skipped else "passed")
    all_held = True
    width = max(len(t) for _, t, _ in cases)
    for n, title, ns in cases:
        results = {node: outcome.get(node, ["missing"]) for node in ns}
        n_tests = sum(len(r) for r in results.values())
        bad = [node for node, r in results.items() if any(x in ("failed", "missing") for x in r)]
        verdict = "held" if not bad else "FAILED"
        all_held &= not bad
        print(f"case {n:>2}  {title:<{width}}  {verdict:<6} ({n_tests} tests)")
        for node in bad:
            print(f"          {node}: {', '.join(sorted(set(results[node])))}")
    print("drills: every case held" if all_held else "drills: some cases FAILED (pytest -q on the names above shows why)")
    return 0 if all_held else 1


if __name__ == "__main__":
    sys.exit(main())
