"""A small inspect task that uses its sandbox as agents do: write a file,
run commands on it, read the result back. Three samples; `HANG_SAMPLE`
(an environment variable naming a sample id) makes that sample run a
command that never ends, for the test that kills it from the dashboard.
"""

import os

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import Score, Target, accuracy, scorer
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.util import sandbox


@solver
def write_run_read():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        box = sandbox()
        await box.write_file("input.txt", state.input_text)
        if state.sample_id == os.environ.get("HANG_SAMPLE"):
            hung = await box.exec(["sh", "-c", "echo hanging; sleep 100000"])
            state.metadata["hung_exit"] = hung.returncode
            if not hung.success:
                # What an agent sees of a command killed under it: a failure.
                state.output.completion = f"killed: exit {hung.returncode}"
                return state
        shouted = await box.exec(["sh", "-c", "tr a-z A-Z < input.txt > output.txt"])
        counted = await box.exec(["wc", "-c", "output.txt"], cwd=".")
        state.metadata["exits"] = [shouted.returncode, counted.returncode]
        state.output.completion = await box.read_file("output.txt")
        return state

    return solve


@scorer(metrics=[accuracy()])
def shouted():
    async def score(state: TaskState, target: Target) -> Score:
        return Score(value="C" if state.output.completion == target.text else "I")

    return score


@task
def shout() -> Task:
    config = os.environ.get("SUBRT_INSPECT_CONFIG")
    return Task(
        dataset=[Sample(input=f"sample {i}", target=f"SAMPLE {i}", id=f"s{i}") for i in range(1, 4)],
        solver=write_run_read(),
        scorer=shouted(),
        sandbox=("subrt", config) if config else "subrt",
    )
