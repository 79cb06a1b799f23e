"""A linear or small-MLP classifier in PyTorch, trained on cached features, as a sklearn estimator."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .params import fit_inputs, validate_estimator_params

Activation = Literal["relu", "gelu", "tanh"]
# Fewer held-out rows than this make a validation loss too noisy to stop on: the training
# loss is monitored instead.
_MIN_VALIDATION_ROWS = 20
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def build_mlp(
    in_features: int,
    n_classes: int,
    hidden_sizes: Sequence[int] = (),
    dropout: float = 0.0,
    activation: Activation = "relu",
) -> nn.Sequential:
    """``Linear`` (no hidden layer) or ``[Linear → activation → Dropout]*`` then ``Linear``."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden_sizes:
        layers += [nn.Linear(width, int(h)), _ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    if dropout > 0 and not hidden_sizes:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when present, else CPU; anything else is passed to :class:`torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TorchHeadClassifier(ClassifierMixin, BaseEstimator):
    """A linear or small MLP head trained with AdamW, with early stopping on a validation split.

    Same ``random_state`` → same weights on CPU (the global torch RNG is left untouched).

    Parameters
    ----------
    hidden_sizes
        Widths of the hidden layers; ``()`` is a linear head (multinomial logistic regression).
    dropout
        Dropout after each hidden layer (before the output layer of a linear head).
    activation
        ``"relu"``, ``"gelu"`` or ``"tanh"``.
    lr, weight_decay
        AdamW learning rate and decoupled weight decay.
    batch_size
        Rows per optimisation step.
    max_epochs
        Upper bound on passes over the training rows.
    early_stopping
        Hold out ``validation_fraction`` of the rows (stratified), keep the weights of the
        epoch with the lowest validation loss, stop after ``patience`` epochs without an
        improvement of at least ``tol``. Without it (or when the split would hold fewer than
        20 rows), the training loss is monitored instead and the last weights are kept.
    validation_fraction, patience, tol
        See ``early_stopping``.
    class_weight
        ``None``, ``"balanced"`` or a ``{class: weight}`` dict, used in the cross-entropy loss.
    random_state
        Seed of the weight initialisation, the validation split, the shuffling and dropout.
    device
        ``"cpu"``, ``"cuda"``, ``"auto"``. The fitted model is kept on the CPU.

    Attributes
    ----------
    classes_, n_features_in_
    model_ : torch.nn.Sequential
        The fitted network (logits out).
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
        Epoch whose weights were kept.
    loss_curve_ : list of float
        Mean training loss per epoch.
    validation_loss_curve_ : list of float
        Validation loss per epoch (empty without early stopping).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> head = TorchHeadClassifier(hidden_sizes=(64,), lr=1e-2, max_epochs=30).fit(X[:1500] / 16, y[:1500])
    >>> head.score(X[1500:] / 16, y[1500:]) > 0.9
    True
    """

    #: scikit-learn's own parameter constraints (checked by :meth:`fit` and by
    #: :func:`embedpipe.heads.validate_head_params` before anything runs).
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden_sizes": ["array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "random_state": [Integral],
        "device": [str],
    }

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (),
        dropout: float = 0.0,
        activation: Activation = "relu",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 200,
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        patience: int = 10,
        tol: float = 1e-4,
        class_weight: Literal["balanced"] | Mapping[Any, float] | None = None,
        random_state: int = 0,
        device: str = "cpu",
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.activation = activation
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.tol = tol
        self.class_weight = class_weight
        self.random_state = random_state
        self.device = device

    # ---- helpers ------------------------------------------------------------------------
    def _check_params(self) -> None:
        validate_estimator_params(self)
        if any(int(h) < 1 for h in self.hidden_sizes):
            raise ValueError(
                f"TorchHeadClassifier: hidden_sizes must be positive, got {self.hidden_sizes!r}."
            )

    def _class_weights(self, y_enc: np.ndarray) -> torch.Tensor | None:
        if self.class_weight is None:
            return None
        if isinstance(self.class_weight, str):
            if self.class_weight != "balanced":
                raise ValueError(
                    f"class_weight={self.class_weight!r}: use None, 'balanced' or a dict."
                )
            present = np.unique(y_enc)
            w = np.ones(self.classes_.size)
            w[present] = compute_class_weight("balanced", classes=present, y=y_enc)
        else:
            unknown = [c for c in self.class_weight if c not in set(self.classes_.tolist())]
            if unknown:
                raise ValueError(
                    f"class_weight names classes {unknown} not in the labels {self.classes_.tolist()}."
                )
            w = np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_.tolist()])
        return torch.as_tensor(w, dtype=torch.float32)

    def _init_model(self, n_features: int) -> None:
        self.model_ = build_mlp(
            n_features,
            self.classes_.size,
            tuple(self.hidden_sizes),
            float(self.dropout),
            self.activation,
        )
        self.optimizer_ = torch.optim.AdamW(
            self.model_.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True
        )
        self.n_iter_ = 0
        self.loss_curve_: list[float] = []
        self.validation_loss_curve_: list[float] = []

    def _batches(self, n: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, int(self.batch_size)):
            yield order[i : i + int(self.batch_size)]

    def _epoch(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        weight: torch.Tensor | None,
        gen: torch.Generator,
        dev: torch.device,
    ) -> float:
        model, opt = self.model_, self.optimizer_
        model.train()
        total, count = 0.0, 0
        for idx in self._batches(X.shape[0], gen):
            xb, yb = X[idx].to(dev, non_blocking=True), y[idx].to(dev, non_blocking=True)
            loss = nn.functional.cross_entropy(model(xb), yb, weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
        return total / max(1, count)

    @torch.no_grad()
    def _loss(
        self, X: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, dev: torch.device
    ) -> float:
        """Validation loss, weighted like the training loss (sum of losses / sum of weights)."""
        self.model_.eval()
        total, denom = 0.0, 0.0
        for i in range(0, X.shape[0], 4096):
            yb = y[i : i + 4096].to(dev)
            logits = self.model_(X[i : i + 4096].to(dev))
            total += float(nn.functional.cross_entropy(logits, yb, weight=weight, reduction="sum"))
            denom += float(weight[yb].sum()) if weight is not None else yb.numel()
        return total / max(denom, 1e-12)

    def _split(
        self, X: np.ndarray, y_enc: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        n_val = int(np.ceil(self.validation_fraction * X.shape[0]))
        if not self.early_stopping or n_val < _MIN_VALIDATION_ROWS or X.shape[0] - n_val < 1:
            return X, y_enc, None, None
        counts = np.bincount(y_enc)
        stratify = (
            y_enc if counts[counts > 0].min() >= 2 and n_val >= np.count_nonzero(counts) else None
        )
        Xt, Xv, yt, yv = train_test_split(
            X, y_enc, test_size=n_val, random_state=self.random_state, stratify=stratify
        )
        return Xt, yt, Xv, yv

    # ---- fitting ------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> TorchHeadClassifier:
        """Train from scratch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        X, y_enc = fit_inputs(self, X, y, np.float32)
        dev = resolve_device(self.device)
        Xt, yt, Xv, yv = self._split(X, y_enc)
        weight = self._class_weights(yt)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            self._init_model(X.shape[1])
            self.model_.to(dev)
            if weight is not None:
                weight = weight.to(dev)
            gen = torch.Generator().manual_seed(self.random_state)
            tx, ty = torch.from_numpy(Xt), torch.from_numpy(yt.astype(np.int64))
            vx = torch.from_numpy(Xv) if Xv is not None else None
            vy = torch.from_numpy(yv.astype(np.int64)) if yv is not None else None
            best, best_state, since = np.inf, None, 0
            self.best_epoch_ = 0
            for epoch in range(1, int(self.max_epochs) + 1):
                train_loss = self._epoch(tx, ty, weight, gen, dev)
                self.loss_curve_.append(train_loss)
                self.n_iter_ = epoch
                if vx is not None and vy is not None:
                    current = self._loss(vx, vy, weight, dev)
                    self.validation_loss_curve_.append(current)
                else:
                    current = train_loss
                if current < best - self.tol:
                    best, since, self.best_epoch_ = current, 0, epoch
                    if vx is not None:
                        best_state = copy.deepcopy(self.model_.state_dict())
                else:
                    since += 1
                    if since >= self.patience:
                        break
            if best_state is not None:
                self.model_.load_state_dict(best_state)
        self._gen_state = gen.get_state()
        self.model_.to("cpu").eval()
        self._optimizer_to_cpu()
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> TorchHeadClassifier:
        """One pass of AdamW over ``X`` (for data that does not fit in memory).

        Parameters
        ----------
        X, y
            A batch of rows.
        classes
            All classes, required on the first call (as in :meth:`sklearn.linear_model.SGDClassifier.partial_fit`).

        Returns
        -------
        self
        """
        first = not hasattr(self, "model_")
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float32, reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = np.unique(np.asarray(classes))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.random_state)
                self._init_model(X.shape[1])
            self._gen_state = torch.Generator().manual_seed(self.random_state).get_state()
            self.best_epoch_ = 0
        elif classes is not None and not np.array_equal(
            np.unique(np.asarray(classes)), self.classes_
        ):
            raise ValueError(
                f"classes {np.unique(classes).tolist()} differ from the first call's {self.classes_.tolist()}."
            )
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(
                f"labels {unknown.tolist()} are not in classes {self.classes_.tolist()}."
            )
        y_enc = np.searchsorted(self.classes_, y)
        dev = resolve_device(self.device)
        weight = self._class_weights(y_enc)
        gen = torch.Generator()
        gen.set_state(self._gen_state)
        self.model_.to(dev)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            loss = self._epoch(
                torch.from_numpy(X),
                torch.from_numpy(y_enc.astype(np.int64)),
                None if weight is None else weight.to(dev),
                gen,
                dev,
            )
        self._gen_state = gen.get_state()
        self.loss_curve_.append(loss)
        self.n_iter_ += 1
        self.model_.to("cpu").eval()
        self._optimizer_to_cpu()
        return self

    def _optimizer_to_cpu(self) -> None:
        for state in self.optimizer_.state.values():
            for k, v in state.items():
                if isinstance(v, torch.Tensor) and v.device.type != "cpu":
                    state[k] = v.cpu()

    # ---- state (the network as numpy arrays) -------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Plain state: the network and optimizer as numpy arrays (no torch objects), so a
        fitted head saves in the safe head format (skops) and pickles alike."""
        return _plain_state(self, super().__getstate__())

    def __setstate__(self, state: dict[str, Any]) -> None:
        _restore_state(self, state)

    # ---- prediction ---------------------------------------------------------------------
    @torch.no_grad()
    def _logits(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        # float64 inference: a row's scores do not depend on which batch it is in (float32
        # matmul kernels differ with the batch size in the last bits).
        model = copy.deepcopy(self.model_).to(dtype=torch.float64).eval()
        out = [
            model(torch.from_numpy(X[i : i + 8192]).double()) for i in range(0, X.shape[0], 8192)
        ]
        return torch.cat(out).numpy() if out else np.empty((0, self.classes_.size))

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits, shape ``(n_samples, n_classes)``; for two classes the logit margin of
        ``classes_[1]``, shape ``(n_samples,)`` (the scikit-learn convention)."""
        logits = self._logits(X)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log-softmax of the logits, columns in the order of ``classes_``."""
        logits = self._logits(X)
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the logits, columns in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest logit."""
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]


# ---- plain state (numpy arrays, no torch objects): safe formats and pickles alike ----------
def _to_plain(value: Any) -> Any:
    """Tensors → numpy arrays, recursively (dict keys kept, tuples kept)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_plain(v) for v in value)
    return value


def _to_tensors(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, dict):
        return {k: _to_tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_tensors(v) for v in value)
    return value


def _plain_state(self: TorchHeadClassifier, state: dict[str, Any]) -> dict[str, Any]:
    state = dict(state)
    if "model_" in state:
        state["model_"] = {k: _to_plain(v) for k, v in state["model_"].state_dict().items()}
    if "optimizer_" in state:
        opt = state["optimizer_"].state_dict()
        state["optimizer_"] = {
            # integer keys as [key, value] pairs: the safe head format keys dicts by strings
            "state": [[int(k), _to_plain(v)] for k, v in opt["state"].items()],
            "param_groups": _to_plain(opt["param_groups"]),
        }
    if "_gen_state" in state:
        state["_gen_state"] = _to_plain(state["_gen_state"])
    return state


def _restore_state(self: TorchHeadClassifier, state: dict[str, Any]) -> None:
    state = dict(state)
    model_state = state.pop("model_", None)
    opt_state = state.pop("optimizer_", None)
    if "_gen_state" in state and isinstance(state["_gen_state"], np.ndarray):
        state["_gen_state"] = torch.from_numpy(np.array(state["_gen_state"]))
    self.__dict__.update(state)
    if isinstance(model_state, dict):
        self._init_model(int(self.n_features_in_))  # the architecture, then its weights
        self.__dict__.update(state)  # curves and counters as saved
        self.model_.load_state_dict({k: _to_tensors(v) for k, v in model_state.items()})
        self.model_.eval()
        if isinstance(opt_state, dict):
            self.optimizer_.load_state_dict(
                {
                    "state": {int(k): _to_tensors(v) for k, v in opt_state["state"]},
                    "param_groups": _to_tensors(opt_state["param_groups"]),
                }
            )
    elif model_state is not None:  # a torch module (an older pickle)
        self.model_ = model_state
        if opt_state is not None:
            self.optimizer_ = opt_state
