"""Where the TUI shows that Slurm runs a job: the queue's status cell and the job detail's title line."""

from __future__ import annotations


def _row(**extra):
    return {"key": "k" * 64, "kind": "train_classifier", "label": "train resnet", "status": "running", "progress": 1,
            "progress_total": 4, "eta_s": 30.0, "gpus": "", "priority": 0, "studies": "s", **extra}


def test_the_queue_shows_the_slurm_state_of_a_running_job():
    from xaug.tui.widgets.job_table import job_cells, row_signature

    assert job_cells(_row(slurm_job_id="41_2", slurm_state="PENDING"))[3].plain == "running (pending)"
    assert job_cells(_row())[3].plain == "running"
    assert job_cells(_row(slurm_state="RUNNING", cancel_requested=1))[3].plain == "running (cancelling)"
    assert row_signature(_row(slurm_state="PENDING")) != row_signature(_row(slurm_state="RUNNING"))


def test_the_job_detail_names_the_slurm_job():
    from xaug.tui.screens.job_detail import job_summary

    assert "Slurm job 41_2 RUNNING" in job_summary(_row(slurm_job_id="41_2", slurm_state="RUNNING")).plain
    assert "Slurm" not in job_summary(_row()).plain
