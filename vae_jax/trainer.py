"""The training loop: data, parallel steps, evaluation, image grids, checkpoints, resumption.

`train_and_evaluate(config, workdir)` is what `train.py` calls. Rerunning it on
the same workdir resumes from the newest readable checkpoint, with the same
data order, so an interrupted run ends with the same parameters as an
uninterrupted one.

Host syncs happen only every `log_every` steps and at evaluations and
checkpoints; in between, steps are dispatched asynchronously while the host
prepares the next batch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from vae_jax import checkpointing
from vae_jax import curves
from vae_jax import config as config_lib
from vae_jax import data
from vae_jax.data.augment import Augmentation
from vae_jax import evaluators as evaluators_lib
from vae_jax.data.source import gather_examples
from vae_jax import images
from vae_jax import losses
from vae_jax import metrics_log
from vae_jax import model as model_lib
from vae_jax import parallel
from vae_jax import resume
from vae_jax import run_lock
from vae_jax import sampling
from vae_jax import tensorboard
from vae_jax import train_step as step_lib
from vae_jax.errors import UserError

@dataclasses.dataclass(frozen=True)
class Keys:
  """The run's keys, all derived from `config.seed`."""
  init: jax.Array
  train: jax.Array
  eval: jax.Array
  sample: jax.Array

  @classmethod
  def from_seed(cls, seed: int) -> "Keys":
    return cls(*jax.random.split(jax.random.key(seed), 4))


def check_resumable(config: ml_collections.ConfigDict, workdir: Path, *,
                    allow_changes: bool = False) -> dict | None:
  """The changes {key: (old, new)} from the run saved in `workdir` (None if it has no config.json).

  Raises UserError for a change that a resumed run cannot take (see `vae_jax/resume.py`).
  """
  saved = resume.load_saved(workdir)
  ckpt_dir = workdir / "checkpoints"
  if saved is None or not (ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir())):
    return None  # nothing to resume: a new run
  return resume.check(saved, resume.flatten(config.to_dict()), workdir=workdir, allow_changes=allow_changes,
                      defaults=resume.flatten(config_lib.base_config().to_dict()))


def finished_result(workdir: Path, step: int) -> dict | None:
  """The final test record of a run that already reached `step`, if it has one."""
  path = workdir / "metrics.jsonl"
  rows = metrics_log.read(path) if path.exists() else []
  tests = [r for r in rows if r.get("split") == "test" and r.get("step") == step]
  return tests[-1] if tests else None


def finished_by(config: ml_collections.ConfigDict, step: int, train_s: float) -> str | None:
  """The config key whose limit a run restored at `step` after `train_s` seconds has reached."""
  if step >= config.num_train_steps:
    return "num_train_steps"
  if 0 < config.max_train_s <= train_s:
    return "max_train_s"
  return None


def grid_labels(model, num: int) -> jax.Array | None:
  """Labels for a grid of prior samples: the classes in turn, 0, 1, ..., K-1, 0, 1, ..."""
  k = getattr(model, "num_classes", 0)
  return None if k <= 0 else jnp.asarray(np.arange(num) % k, jnp.int32)


def write_grids(params, test_source, workdir: Path, step: int, *, model,
                keys: Keys, num: int) -> None:
  """DIR/samples/step_N_{prior,recon}.png: prior samples, and test images beside reconstructions
  (for a model with an encoder)."""
  out = workdir / "samples"
  x = sampling.prior_samples(params, keys.sample, 1.0, model=model, num=num, y=grid_labels(model, num))
  images.save_grid(np.asarray(x), out / f"step_{step:07d}_prior.png")
  if not model.has_encoder:
    return
  n = min(num // 2, len(test_source))
  originals, labels = gather_examples(test_source, np.arange(n))
  recon = np.asarray(sampling.reconstructions(params, originals, model=model, y=labels))
  images.save_grid(images.interleave(originals / 255.0, recon), out / f"step_{step:07d}_recon.png",
                   ncol=2 * max(1, int(math.sqrt(n))))


_SUMMARY_KEYS = ("neg_elbo", "recon", "kl", "neg_iwae", "is_nll", "is_nll_stderr", "bits_per_dim",
                 "is_nll_bits_per_dim", "active_units")
_QUALITY_KEYS = ("fid", "kid", "precision", "recall", "class_coverage", "cond_accuracy", "d_loss", "g_loss",
                 "d_real", "d_fake")


def summary_line(result: dict[str, float]) -> str:
  """The headline test figures that `result` has, e.g. 'neg_elbo 97.39, recon 70.07, kl 27.32, ...'."""
  parts = [f"{k} {result[k]:.4f}" if "bits" in k else f"{k} {result[k]:.2f}"
           for k in _SUMMARY_KEYS if k in result]
  quality = [f"{k} {result[k]:.4g}" for k in _QUALITY_KEYS if k in result]
  if not parts:
    return ", ".join(quality)
  return ", ".join(parts) + " (nats per image unless bits)" + "".join(f", {q}" for q in quality)


class Aborted(KeyboardInterrupt):
  """A second Ctrl-C: stop now, without saving (the last checkpoint stays as it was)."""


class _StopOnInterrupt:
  """Turns the first Ctrl-C into a request to stop after the current step (a second one aborts).

  Stopping between steps, never inside one, keeps the donated state intact for
  the final checkpoint.
  """

  def __init__(self):
    self.requested = False
    self._previous = None

  def _handle(self, signum, frame):
    if self.requested:
      raise Aborted
    self.requested = True
    print("\nstopping after this step (Ctrl-C again to abort without saving)", file=sys.stderr,
          flush=True)

  def __enter__(self) -> "_StopOnInterrupt":
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGINT, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGINT, self._previous)


def startup_line(config: ml_collections.ConfigDict, backend: parallel.Backend, start: int) -> str:
  """What is about to run: model, data, devices, steps."""
  m = config.model
  devices = backend.num_devices * jax.process_count()
  platform = jax.local_devices()[0].platform
  hosts = f" on {jax.process_count()} hosts" if jax.process_count() > 1 else ""
  parts = f"loss {config.loss}" if config.loss == "gan" else f"{m.likelihood} likelihood, loss {config.loss}"
  return (f"training {m.name} ({parts}) on {config.data.name}: "
          f"{devices} {platform} device(s){hosts} with {backend.name}, global batch {config.batch_size}, "
          f"steps {start} -> {config.num_train_steps}; compiling the step first")


def closing_line(workdir: Path, step: int, final: dict[str, float]) -> str:
  """Where everything went, and the final test figures."""
  return (f"done at step {step}: test {summary_line(final)}; checkpoints in {workdir / 'checkpoints'}, "
          f"samples in {workdir / 'samples'}, metrics in {workdir / 'metrics.jsonl'} "
          f"(plotted in {workdir / 'curves.png'})")


def check_classes(config: ml_collections.ConfigDict, datasets: data.Datasets) -> None:
  """A conditional model needs labels, and as many classes as the data has."""
  k = config.model.num_classes
  if k > 0 and datasets.num_classes == 0:
    raise UserError(f"model.num_classes={k} makes the model conditional, but the data has no labels; "
                    "set --config.data.labels=True")
  if k > 0 and k != datasets.num_classes:
    raise UserError(f"model.num_classes={k} but {config.data.name} has {datasets.num_classes} classes "
                    f"({', '.join(datasets.class_names)}); set --config.model.num_classes="
                    f"{datasets.num_classes}")


def check_divisible(config: ml_collections.ConfigDict, backend: parallel.Backend) -> None:
  parts = backend.num_devices * jax.process_count()
  for key in ("batch_size", "eval_batch_size"):
    if config[key] % parts:
      raise UserError(f"{key}={config[key]} must be divisible by the {parts} devices; "
                      f"set --config.{key} to a multiple of {parts}")


def _last_checkpoint(step: int | None) -> str:
  return "no checkpoint was saved" if step is None else f"the last checkpoint (step {step}) is intact"


def _crossed(prev: int, step: int, every: int) -> bool:
  """Whether a multiple of `every` lies in (prev, step]."""
  return prev // every != step // every


def _host_mean(metric_list: list, backend: parallel.Backend) -> dict[str, float]:
  """Means over every step of a list of (per-call metrics [steps_per_call], steps used in the call).

  With update skipping, the means are over the applied steps only (a skipped step's loss may be
  NaN; `skipped` stays the fraction of steps skipped).
  """
  fetched = jax.device_get([backend.unreplicate(m) for m, _ in metric_list])
  counts = [n for _, n in metric_list]
  values = {k: np.concatenate([np.ravel(m[k])[:n] for m, n in zip(fetched, counts)]) for k in fetched[0]}
  applied = values["skipped"] == 0 if "skipped" in values else np.ones_like(values["loss"], bool)
  return {k: float(np.mean(v if k == "skipped" or not applied.any() else v[applied]))
          for k, v in values.items()}


def check_skips(summary: dict[str, float], skip_state, step: int,
                config: ml_collections.ConfigDict) -> str | None:
  """Adds the run's skip count to `summary`; the stop message after too many skips in a row."""
  consecutive, total = int(skip_state.consecutive), int(skip_state.skipped)
  summary["skipped_total"] = total
  if consecutive < config.max_consecutive_skips:
    return None
  return (f"{consecutive} updates in a row were skipped (gradient norm non-finite or above "
        f"{config.skip_factor} x its running {config.skip_quantile} quantile) up to step {step}; "
        "the parameters are those before the first of them. Lower --config.learning_rate, set "
        "--config.grad_clip_norm, or raise --config.skip_factor")


@dataclasses.dataclass
class Run:
  """What a training run holds fixed once it is set up (`setup`)."""
  config: ml_collections.ConfigDict
  workdir: Path
  model: Any
  backend: parallel.Backend
  keys: Keys
  datasets: data.Datasets
  evaluators: dict
  ckpts: checkpointing.Checkpoints
  log: metrics_log.MetricsLog
  train_key: jax.Array
  step_fn: Any  # the compiled train_steps
  primary: bool
  tensorboard: tensorboard.TensorBoardLog | None = None  # with config.tensorboard
  lock: run_lock.RunLock | None = None  # the workdir's lock, held by process 0

  def write(self, record: dict) -> None:
    """One metrics record: to metrics.jsonl, and to TensorBoard when it is on."""
    self.log.write(record)
    if self.tensorboard is not None:
      self.tensorboard.write(record)


@dataclasses.dataclass
class Loop:
  """The training loop's state between steps: explicit, passed in and out."""
  d_state: Any  # TrainState on the devices
  step: int
  last_saved: int | None
  train_s: float = 0.0  # the run's seconds in training steps, across resumes: no evaluation, grids or checkpoints
  out_of_time: float = 0.0  # the seconds trained when config.max_train_s was reached (0: not yet)
  t_last: float = dataclasses.field(default_factory=time.perf_counter)  # start of the unbanked stretch
  interval_s: float = 0.0  # training seconds since the last train row
  n_last: int = 0  # the step of the last train row
  pending: list = dataclasses.field(default_factory=list)  # (metrics, steps) of calls not yet logged
  log_due: int | None = None  # the step of a train row whose metrics are still to be read


def bank_train_time(loop: Loop) -> None:
  """Adds the training seconds since `t_last` to `train_s` and the interval; the clock goes on."""
  now = time.perf_counter()
  loop.train_s += now - loop.t_last
  loop.interval_s += now - loop.t_last
  loop.t_last = now


def build(config: ml_collections.ConfigDict, workdir: Path, *, allow_config_changes: bool):
  """(model, loss_fn, optimizer, backend, keys, evaluators, datasets, changes) with every input checked.

  Everything that can fail on bad input is checked before DIR is touched, and the whole config
  (names of the model, likelihood, loss, evaluators...) before any data is read or downloaded.
  """
  config_lib.validate(config)
  data.validate(config.data)
  image_shape = (config.data.image_size, config.data.image_size, config.data.channels)
  model = model_lib.make_model(config, image_shape)
  loss_fn = losses.get_loss_fn(config)
  optimizer = step_lib.make_optimizer(config)
  backend = parallel.make_backend(config.parallel, config.num_devices)
  check_divisible(config, backend)
  changes = check_resumable(config, workdir, allow_changes=allow_config_changes)
  keys = Keys.from_seed(config.seed)
  evaluators = evaluators_lib.make_evaluators(config.evaluators, evaluators_lib.EvalSetup(
      model=model, config=config, loss_fn=loss_fn, backend=backend, eval_key=keys.eval,
      batch_size=config.eval_batch_size))
  datasets = data.load_datasets(config.data)  # checks that its images have `image_shape`
  check_classes(config, datasets)
  return model, loss_fn, optimizer, backend, keys, evaluators, datasets, changes


def restore_state(ckpts: checkpointing.Checkpoints, state: step_lib.TrainState, train_key: jax.Array):
  """(state, train_key, data_state, step, train_s) from the newest readable checkpoint, or the
  inputs, None, None and 0 when there is none."""
  target = lambda tree: checkpointing.restore_target(tree) if tree is not None else None  # noqa: E731
  r = ckpts.restore_train(abstract_params=target(state.params), abstract_opt_state=target(state.opt_state),
                          abstract_ema=target(state.ema_params), abstract_skip=target(state.skip))
  if r is None:
    return state, train_key, None, None, 0.0
  if r.train_s is None and jax.process_index() == 0:
    print(f"warning: checkpoint {r.step} does not record the run's training time (an older version saved "
          "it); train_s counts from 0 again", file=sys.stderr, flush=True)
  state = step_lib.TrainState(step=jnp.asarray(r.step, jnp.int32), params=r.params, opt_state=r.opt_state,
                              ema_params=r.ema_params, skip=r.skip)
  return state, jax.random.wrap_key_data(jnp.asarray(r.key_data)), r.data_state, r.step, r.train_s or 0.0


def record_start(run: Run, restored_step: int | None, changes: dict | None) -> None:
  """metrics.jsonl without rows past the restored step; config.json and its history."""
  if not run.primary:
    return
  path = run.workdir / "metrics.jsonl"
  metrics_log.drop_after(path, restored_step or 0)  # a new run: rows of an attempt that saved nothing
  if restored_step is not None and changes:
    resume.record(run.workdir, run.config, step=restored_step, changes=changes)
  elif restored_step is None or changes is None:  # a new run, or a run without config.json
    resume.write_atomically(run.workdir / "config.json", run.config.to_json_best_effort(indent=2) + "\n")


def eval_params(run: Run, loop: Loop):
  """The parameters evaluation and grids use: the EMA when the run keeps one."""
  return loop.d_state.params if loop.d_state.ema_params is None else loop.d_state.ema_params


def save(run: Run, loop: Loop, train_iter) -> None:
  """Checkpoints the state at `loop.step` (asynchronously), refusing non-finite parameters."""
  host = jax.device_get(run.backend.unreplicate(loop.d_state))
  if not all(np.all(np.isfinite(x)) for x in jax.tree.leaves(host.params)):
    raise UserError(f"parameters are not finite at step {loop.step}; not saving. "
                    f"{_last_checkpoint(loop.last_saved)}; lower --config.learning_rate or set "
                    "--config.grad_clip_norm")
  run.ckpts.save(loop.step, params=host.params, opt_state=host.opt_state, rng=run.train_key,
                 ema_params=host.ema_params, skip=host.skip, data_state=train_iter.get_state(),
                 train_s=loop.train_s)
  loop.last_saved = loop.step


def evaluate(run: Run, loop: Loop) -> dict[str, float]:
  """Every evaluator over the test split at `loop.step`; written to metrics.jsonl."""
  result = evaluators_lib.run_all(run.evaluators, eval_params(run, loop), run.datasets.test, loop.step)
  run.write({"split": "test", "step": loop.step, **result, "train_s": loop.train_s})  # banked just before
  if run.primary:
    try:
      curves.write_curves(run.workdir / "metrics.jsonl", run.workdir / "curves.png")
    except OSError as e:  # a plot is not worth stopping a run for
      print(f"warning: could not write {run.workdir / 'curves.png'}: {e}", file=sys.stderr, flush=True)
  return result


def grids(run: Run, loop: Loop) -> None:
  if run.primary:
    write_grids(run.backend.unreplicate(eval_params(run, loop)), run.datasets.test, run.workdir, loop.step,
                model=run.model, keys=run.keys, num=run.config.num_grid_images)


def log_interval(run: Run, loop: Loop, step: int, metrics: list) -> dict[str, float]:
  """Reads `metrics`, the calls up to `step` (one host sync), writes the train row; stops on divergence."""
  config = run.config
  summary = _host_mean(metrics, run.backend)
  skip_stop = None
  if loop.d_state.skip is not None:  # never deferred: the state is still that of `step`
    skip_stop = check_skips(summary, run.backend.unreplicate(loop.d_state.skip), step, config)
  bank_train_time(loop)
  summary["images_per_s"] = (step - loop.n_last) * config.batch_size / max(loop.interval_s, 1e-9)
  summary["train_s"] = loop.train_s
  loop.interval_s, loop.n_last = 0.0, step
  run.write({"split": "train", "step": step, **summary})
  if skip_stop:
    raise UserError(skip_stop)
  if not math.isfinite(summary["loss"]) and loop.d_state.skip is None:  # skipping: never applied
    raise UserError(f"training diverged: loss is {summary['loss']} at step {step}; "
                    f"{_last_checkpoint(loop.last_saved)}; lower --config.learning_rate or set "
                    "--config.grad_clip_norm")
  return summary


def flush_log(run: Run, loop: Loop, bar, *, keep_last: bool) -> None:
  """Writes the train row due at `loop.log_due`, from every pending call but (with `keep_last`)
  the one dispatched after it: reading step t's metrics after step t+1 is dispatched keeps the
  devices busy while the host waits."""
  if loop.log_due is None:
    return
  upto = len(loop.pending) - (1 if keep_last else 0)
  metrics, loop.pending = loop.pending[:upto], loop.pending[upto:]
  step, loop.log_due = loop.log_due, None
  show_progress(bar, log_interval(run, loop, step, metrics), step, run.config.num_train_steps)


def show_progress(bar, summary: dict[str, float], step: int, total: int) -> None:
  bar.set_postfix(loss=f"{summary['loss']:.2f}", img_s=f"{summary['images_per_s']:.0f}")
  if bar.disable:
    extra = f" neg_elbo {summary['neg_elbo']:.3f}" if "neg_elbo" in summary else ""
    print(f"step {step}/{total}: loss {summary['loss']:.3f}{extra} "
          f"({summary['images_per_s']:.0f} images/s)", file=sys.stderr, flush=True)


def dispatch(run: Run, loop: Loop, train_iter, d_train_key, end: int) -> int:
  """Dispatches the next call's steps (asynchronously); returns the previous step.

  Calls end on multiples of steps_per_call (so logging and checkpoints land on them). Every call
  has steps_per_call batch slots; a short one fills the rest with copies of its last batch, which
  `train_steps` does not use (`num_steps`), so no call is a new trace.
  """
  config = run.config
  n = min(config.steps_per_call - loop.step % config.steps_per_call, end - loop.step)
  batches = [next(train_iter) for _ in range(n)]
  batches += batches[-1:] * (config.steps_per_call - n)
  rows = parallel.process_slice(config.batch_size)
  stacked = {k: np.stack([b[k][rows] for b in batches]) for k in batches[0]}
  loop.d_state, metrics = run.step_fn(loop.d_state, run.backend.shard_batch(stacked, batch_axis=1), d_train_key,
                                      run.backend.replicate(jnp.int32(n)))
  loop.pending.append((metrics, n))
  prev, loop.step = loop.step, loop.step + n
  return prev


def after_steps(run: Run, loop: Loop, prev: int, end: int, train_iter, bar) -> None:
  """Logging, evaluation, grids and checkpoints due in (prev, loop.step]."""
  config, step = run.config, loop.step
  due = functools.partial(_crossed, prev, step)
  if due(config.log_every) or step == end:
    loop.log_due = step
  bar.update(step - prev)
  if (step == end or loop.d_state.skip is not None or due(config.checkpoint_every)
      or (step < config.num_train_steps and (due(config.eval_every) or due(config.sample_every)))):
    flush_log(run, loop, bar, keep_last=False)  # before the state moves on, or at the end
    jax.block_until_ready(loop.d_state.step)  # the steps are done (no row may have read them)
    bank_train_time(loop)  # what follows is not training
  busy = False
  if due(config.eval_every) and step < config.num_train_steps:
    evaluate(run, loop)
    busy = True
  if due(config.sample_every) and step < config.num_train_steps:
    grids(run, loop)
    busy = True
  if due(config.checkpoint_every) or step == end:
    save(run, loop, train_iter)
    busy = True
  if busy:  # train_s and images/s count training only
    loop.t_last = time.perf_counter()


def out_of_time(run: Run, loop: Loop) -> bool:
  """Whether the run has trained `max_train_s` seconds (training steps only, across resumes); sets
  loop.out_of_time."""
  budget, used = run.config.max_train_s, loop.train_s + (time.perf_counter() - loop.t_last)
  if budget > 0 and used >= budget:
    loop.out_of_time = used
  return loop.out_of_time > 0


def train_loop(run: Run, loop: Loop, train_iter, end: int) -> bool:
  """Steps until `end` or a Ctrl-C; returns whether it was interrupted. A second Ctrl-C raises Aborted."""
  d_train_key = run.backend.replicate(run.train_key)
  loop.t_last = time.perf_counter()  # training time starts here (compiling the step counts)
  bar = tqdm(total=run.config.num_train_steps, initial=loop.step, dynamic_ncols=True, unit="step",
             disable=None if run.config.progress_bar else True, file=sys.stderr)
  try:
    with _StopOnInterrupt() as interrupt:
      while loop.step < end and not interrupt.requested and not out_of_time(run, loop):
        prev = dispatch(run, loop, train_iter, d_train_key, end)
        flush_log(run, loop, bar, keep_last=True)  # the previous call's row, read now
        after_steps(run, loop, prev, end, train_iter, bar)
    if loop.out_of_time and loop.pending:  # the budget's last steps get their row
      loop.log_due = loop.step
    flush_log(run, loop, bar, keep_last=False)  # stopped by Ctrl-C just after a row was due
  finally:
    bar.close()
  return interrupt.requested


def setup(config: ml_collections.ConfigDict, workdir: Path, *, allow_config_changes: bool):
  """(run, loop, train_iter) ready to train, or (None, finished result) for a run already done."""
  model, loss_fn, optimizer, backend, keys, evaluators, datasets, changes = build(
      config, workdir, allow_config_changes=allow_config_changes)
  state = step_lib.init_state(model_lib.init(model, keys.init, datasets.image_shape), optimizer, config)
  workdir.mkdir(parents=True, exist_ok=True)
  primary = jax.process_index() == 0
  lock = run_lock.acquire(workdir) if primary else None  # one writer: the other processes join it
  try:
    ckpts = checkpointing.Checkpoints(workdir, max_to_keep=config.keep_checkpoints)
  except BaseException:
    _release(lock)
    raise
  try:
    state, train_key, data_state, restored, train_s = restore_state(ckpts, state, keys.train)
  except BaseException:
    ckpts.close()
    _release(lock)
    raise
  step_fn = backend.compile(functools.partial(step_lib.train_steps, loss_fn=loss_fn, model=model,
                                              config=config, optimizer=optimizer), donate_argnums=(0,))
  run = Run(config=config, workdir=workdir, model=model, backend=backend, keys=keys, datasets=datasets,
            evaluators=evaluators, ckpts=ckpts, train_key=train_key, step_fn=step_fn, primary=primary, lock=lock,
            log=metrics_log.MetricsLog(workdir / "metrics.jsonl", enabled=primary),
            tensorboard=tensorboard.TensorBoardLog(workdir / "tensorboard", enabled=primary)
            if config.tensorboard else None)
  train_iter = data.train_iterator(datasets.train, batch_size=config.batch_size, seed=config.seed,
                                   augment=Augmentation.from_config(config.data, config.seed))
  if data_state is not None:
    train_iter.set_state(data_state)
  start = int(state.step)
  loop = Loop(d_state=backend.replicate(state), step=start, last_saved=restored, n_last=start, train_s=train_s)
  return run, loop, train_iter, restored, changes


# Temporary files the run's own atomic writes use (curves, grids, config.json, metrics.jsonl),
# left behind only when a process is killed between writing one and renaming it into place.
_TEMPORARIES = (".curves.png.*.tmp", "config.json.tmp", "metrics.jsonl.tmp", "samples/.*.png.*.tmp")


def remove_temporaries(workdir: Path) -> None:
  """Deletes what a killed process left of the run's atomic writes (never anything else)."""
  for pattern in _TEMPORARIES:
    for path in workdir.glob(pattern):
      path.unlink(missing_ok=True)


def complete_outputs(run: Run, loop: Loop) -> str:
  """For a finished run, the final grids and curves a process killed after its last test row did
  not write: writes what is missing; says what it wrote ('' if nothing was)."""
  if not run.primary:
    return ""
  wrote = []
  samples = run.workdir / "samples"
  kinds = ("prior", "recon") if run.model.has_encoder else ("prior",)
  if not all((samples / f"step_{loop.step:07d}_{kind}.png").exists() for kind in kinds):
    grids(run, loop)
    wrote.append("the final sample grids")
  if not (run.workdir / "curves.png").exists():
    curves.write_curves(run.workdir / "metrics.jsonl", run.workdir / "curves.png")
    wrote.append("curves.png")
  return f"wrote the missing {' and '.join(wrote)}" if wrote else ""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       stop_after_step: int | None = None,
                       allow_config_changes: bool = False) -> dict[str, float]:
  """Trains (or resumes) in `workdir`; returns the final test metrics.

  Args:
    stop_after_step: stop (after checkpointing) once this step is reached, as a
      preempted job would; rerunning resumes. For tests and time-sliced jobs.
    allow_config_changes: resume even though opt-in keys (`resume.OPT_IN`)
      differ from the saved config; the changes are recorded.
  """
  workdir = Path(workdir)
  run, loop, train_iter, restored, changes = setup(config, workdir, allow_config_changes=allow_config_changes)
  if run.primary:
    remove_temporaries(workdir)
  try:
    if restored is not None:
      limit = finished_by(config, restored, loop.train_s)
      done = finished_result(workdir, restored) if limit else None
      if done is not None:
        made_good = complete_outputs(run, loop)
        print(f"the run in {workdir} already finished at step {restored} (test {summary_line(done)}); "
              f"{made_good or 'nothing to do'}: raise --config.{limit} to train further",
              file=sys.stderr, flush=True)
        return done
      print(f"resuming from step {restored} in {run.ckpts.directory}", file=sys.stderr, flush=True)
    record_start(run, restored, changes)
    print(startup_line(config, run.backend, loop.step), file=sys.stderr, flush=True)
    return finish(run, loop, train_iter, stop_after_step)
  except KeyboardInterrupt:  # a second Ctrl-C (Aborted), or one while saving after the first
    print(f"aborted at step {loop.step} without saving; the checkpoints in {run.ckpts.directory} are "
          "as they were (a save cut short is not one of them); rerun the same command to resume",
          file=sys.stderr, flush=True)
    raise SystemExit(130) from None
  finally:
    run.ckpts.close()
    if run.tensorboard is not None:
      run.tensorboard.close()
    _release(run.lock)


def _release(lock: run_lock.RunLock | None) -> None:
  if lock is not None:
    lock.release()


def finish(run: Run, loop: Loop, train_iter, stop_after_step: int | None) -> dict[str, float]:
  """Trains to the end (or `stop_after_step`, or a Ctrl-C), saves, and evaluates a finished run."""
  total = run.config.num_train_steps
  end = total if stop_after_step is None else min(total, stop_after_step)
  if run.config.max_train_s > 0 and jax.process_count() > 1:  # clocks differ: processes would part ways
    raise UserError("max_train_s is for one process; in a multi-host run set num_train_steps instead")
  interrupted = train_loop(run, loop, train_iter, end)
  if loop.step != loop.last_saved:
    jax.block_until_ready(loop.d_state.step)
    bank_train_time(loop)  # the steps since the last banking (cut short by a Ctrl-C or the budget)
    save(run, loop, train_iter)
  if interrupted:
    run.ckpts.wait()
    print(f"interrupted at step {loop.step}; checkpoint saved in {run.ckpts.directory}; "
          "rerun the same command to resume", file=sys.stderr, flush=True)
    raise SystemExit(130)
  if loop.step < total and not loop.out_of_time:  # stopped early on purpose: resume later
    return {}
  if loop.out_of_time:
    print(f"stopped at step {loop.step}: {loop.out_of_time:.0f} s of training reached max_train_s="
          f"{run.config.max_train_s:g}", file=sys.stderr, flush=True)
  final = evaluate(run, loop)
  grids(run, loop)
  print(closing_line(run.workdir, loop.step, final), file=sys.stderr, flush=True)
  return final
