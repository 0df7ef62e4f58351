"""A human oracle in Label Studio: each batch becomes tasks of a project; finished annotations are the labels."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.oracles.base import Oracle, shown_columns
from alexp.oracles.human import wait_for

ROW = "alexp_row"  # task data field holding the pool row a task asks about


class LabelStudio(Oracle):
    """Sends each requested batch to a Label Studio project and takes back the annotations made there.

    The project `project` (a title) is created on first use with one single-choice question over the item's
    text (`names` are the choices shown; the answer is the class of `classes` at the same position), and found again by
    its title on every later run, so a run resumes across restarts of alexp or of the server. Each pool item becomes
    one task holding its id, text, the context columns named in `show_columns` and its pool row (`alexp_row`);
    asking again for an item that already has a task adds nothing. An item's label is its latest annotation that was
    not skipped; items without one stay pending. With `wait: false` the run saves its state and stops until
    annotations arrive (run the same command again to resume); with `wait: true` it polls every
    `poll_seconds`, for at most `timeout_seconds` (null = forever).

    The access token is read from the environment variable named by `token_env`, never from the config, and
    never printed or logged. Needs the `label-studio-sdk` package (`pip install "alexp[labelstudio]"`).
    """

    def __init__(self, context: Mapping[str, NDArray], url: str = "http://localhost:8080",
                 token_env: str = "LABEL_STUDIO_API_KEY", project: str = "alexp", classes: Sequence = (0, 1),
                 names: Sequence[str] | None = None, instructions: str = "", show_columns: Sequence[str] = (),
                 wait: bool = False,
                 poll_seconds: float = 10.0, timeout_seconds: float | None = None, cost_per_label: float = 1.0):
        if "id" not in context:
            raise AlexpError("the label_studio oracle needs the pool's ids in its context")
        if not 3 <= len(project) <= 50:
            raise AlexpError(f"project must be a title of 3 to 50 characters (Label Studio's limits); got {project!r}")
        names = [str(c) for c in classes] if names is None else [str(n) for n in names]
        if len(names) != len(classes) or len(set(names)) != len(names):
            raise AlexpError(f"names must give one distinct name per class {list(classes)}; got {names}")
        self.context, self.ids = context, np.asarray(context["id"])
        self.shown = shown_columns(context, show_columns)
        self.url, self.token_env, self.title = url.rstrip("/"), token_env, project
        self.classes, self.names, self.instructions = list(classes), names, instructions
        self.wait, self.poll_seconds, self.timeout_seconds = wait, poll_seconds, timeout_seconds
        super().__init__(cost_per_label)
        self._pending = np.empty(0, dtype=np.intp)
        self._client = self._project_id = None

    def label_config(self) -> str:
        """The project's labeling interface: the item's text and one single-choice question."""
        choices = "".join(f"<Choice value={quoteattr(n)} alias={quoteattr(str(c))}/>"
                          for n, c in zip(self.names, self.classes))
        return (f'<View><Text name="text" value="$text"/>'
                f'<Choices name="label" toName="text" choice="single" showInLine="true">{choices}</Choices></View>')

    def request(self, ids: NDArray[np.intp]) -> None:
        self._pending = np.asarray(ids)
        have = {row for row, _ in self._tasks()}
        new = [int(r) for r in self._pending if int(r) not in have]
        if new:
            self._call("import tasks", lambda c: c.projects.import_tasks(id=self._project(), request=self._data(new)))

    def collect(self) -> dict[int, int] | None:
        return wait_for(self._answers, self.wait, self.poll_seconds, self.timeout_seconds)


    def where(self) -> str:
        return f"annotate the tasks of project {self.title!r} at {self.url}/projects/{self._project()}"

    def _answers(self) -> dict[int, int] | None:
        """{pool row: class index} for the pending rows annotated so far, or None if none are."""
        pending = set(int(r) for r in self._pending)
        values = {str(c): k for k, c in enumerate(self.classes)}
        answers = {}
        for row, task in self._tasks():
            if row not in pending:
                continue
            done = [a for a in task.annotations or [] if not a.get("was_cancelled")]
            if not done:
                continue
            latest = max(done, key=lambda a: (str(a.get("updated_at") or ""), a.get("id") or 0))
            chosen = [c for r in latest.get("result") or [] if r.get("from_name") == "label"
                      for c in r.get("value", {}).get("choices", [])]
            if len(chosen) != 1 or chosen[0] not in values:
                raise AlexpError(f"Label Studio task {task.id} (id {self.ids[row]}) is answered {chosen}, not one "
                                 f"of {list(values)}; fix the annotation in project {self.title!r}")
            answers[row] = values[chosen[0]]
        return answers or None

    def _tasks(self):
        """(pool row, task) for every task of the project; AlexpError if a task belongs to another pool."""
        tasks = self._call("list tasks", lambda c: list(c.tasks.list(project=self._project(), fields="all",
                                                                     page_size=1000)))
        for task in tasks:
            row = task.data.get(ROW)
            if row is None:
                continue  # added by hand in Label Studio: not ours
            if not 0 <= row < len(self.ids) or str(task.data.get("id")) != str(self.ids[row]):
                raise AlexpError(f"Label Studio project {self.title!r} holds task {task.id} for item "
                                 f"{task.data.get('id')!r}, which is not row {row} of this run's pool: the project "
                                 f"belongs to another experiment; set oracle.project to a new title")
            yield row, task

    def _data(self, rows: list[int]) -> list[dict]:
        columns = {k: np.asarray(self.context[k])[rows].tolist() for k in ("id", "text", *self.shown)
                   if k in self.context}
        if "text" not in columns:  # a pool without text: show the item's fields
            columns["text"] = [", ".join(f"{k}: {columns[k][i]}" for k in columns) for i in range(len(rows))]
        return [{ROW: r, **{k: _json(v[i]) for k, v in columns.items()}} for i, r in enumerate(rows)]

    def _project(self) -> int:
        """The id of the project titled `project`, created with the label config if there is none."""
        if self._project_id is None:
            found = self._call("find the project", lambda c: [p for p in c.projects.list(title=self.title)
                                                              if p.title == self.title])
            if len(found) > 1:
                raise AlexpError(f"Label Studio at {self.url} has {len(found)} projects titled {self.title!r}; "
                                 f"set oracle.project to a unique title")
            if found:
                self._project_id = found[0].id
            else:
                self._project_id = self._call("create the project", lambda c: c.projects.create(
                    title=self.title, label_config=self.label_config(), expert_instruction=self.instructions,
                    show_instruction=bool(self.instructions)).id)
        return self._project_id

    def _call(self, what: str, call):
        """call(client), with Label Studio's errors turned into one line that names the server, not the token."""
        try:
            import httpx
            from label_studio_sdk import LabelStudio as Client
            from label_studio_sdk.core.api_error import ApiError
        except ImportError:
            raise AlexpError('oracle=label_studio needs the Label Studio SDK: pip install "alexp[labelstudio]"'
                             ) from None
        if self._client is None:
            token = os.environ.get(self.token_env)
            if not token:
                raise AlexpError(f"set the environment variable {self.token_env} to your Label Studio access token "
                                 f"(Label Studio: Account & Settings > Access Token)")
            self._client = Client(base_url=self.url, api_key=token)
        try:
            return call(self._client)
        except httpx.TransportError as e:
            raise AlexpError(f"cannot reach Label Studio at {self.url} to {what} ({type(e).__name__}); "
                             f"start the server or set oracle.url") from None
        except ApiError as e:
            body = e.body if isinstance(e.body, dict) else {}
            why = body.get("validation_errors") or body.get("detail") or ""
            hint = f"; check the token in {self.token_env}" if e.status_code in (401, 403) else ""
            raise AlexpError(f"Label Studio at {self.url} refused to {what}: HTTP {e.status_code} {why}{hint}"
                             ) from None


def _json(value):
    """A task data value JSON can carry: NaN and infinities (missing values) become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
