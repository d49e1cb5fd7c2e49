"""The run configuration: one dataclass per layer, stored together as a run folder's config.json."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .data import SHAPES_CAPTIONS, SHAPES_P_PAIR
from .diffusion import PREDICTIONS, VARIANCES
from .errors import UserError
from .losses import LOSS_TYPES
from .nn import UNetConfig
from .schedules import BUILDERS, Schedule, build


@dataclass
class DiffusionConfig:
    schedule: str = "linear"          # paper: linear β 1e-4 → 0.02
    num_timesteps: int = 1000         # paper: T = 1000
    prediction: str = "eps"           # paper: ε-prediction
    variance: str = "fixed_small"     # paper: σ² = β̃ (fixed_large σ² = β also in the paper); "learned" (Nichol & Dhariwal)

    def build_schedule(self) -> Schedule:
        return build(self.schedule, self.num_timesteps)

    def validate(self) -> None:
        if self.schedule not in BUILDERS:
            raise UserError(f"unknown schedule {self.schedule!r}: choose one of {', '.join(BUILDERS)}")
        if self.prediction not in PREDICTIONS:
            raise UserError(f"unknown prediction {self.prediction!r}: choose one of {', '.join(PREDICTIONS)}")
        if self.variance not in VARIANCES:
            raise UserError(f"unknown variance {self.variance!r}: choose one of {', '.join(VARIANCES)}")
        if self.num_timesteps < 2:
            raise UserError(f"num_timesteps must be at least 2, got {self.num_timesteps}")


@dataclass
class TrainConfig:
    """Defaults are the CPU recipe for the embedded MNIST digits; paper (CIFAR-10) values noted where they differ."""
    dataset: str = "mnist"
    data_root: str | None = None
    image_size: int | None = None     # None: the dataset's own size (28 for MNIST); folders default to 32
    channels: int | None = None       # None: the dataset's own; folders default to 3
    preset: str | None = None         # None: mnist-tiny for 28×28 grayscale data, tiny-32 otherwise
    steps: int = 2400                 # ≈ 17 minutes for the text model on 2 CPU cores with bf16 (≈ 0.43 s/step)
    batch_size: int = 64              # paper: 128 (64 sees more images per CPU-second here)
    lr: float = 1e-3                  # paper: 2e-4 (a 1M-parameter net tolerates more)
    warmup_steps: int = 100           # paper: 5000
    optimizer: str = "adam"           # paper: Adam
    weight_decay: float = 0.0
    grad_clip: float = 1.0            # paper: clip at 1.0
    ema_decay: float = 0.9999         # paper: 0.9999
    ema_warmup: bool = True           # decay min(ema_decay, (1+n)/(10+n)) so short runs still average sensibly
    loss: str = "simple"              # paper: L_simple; "vlb" or "hybrid" (Nichol & Dhariwal)
    timestep_sampler: str = "uniform"  # or "loss-second-moment" (for L_vlb)
    snr_gamma: float | None = 5.0     # Min-SNR-γ loss weighting (Hang et al. 2023); paper: None (plain L_simple)
    precision: str = "auto"           # auto: bf16 autocast where the CPU/GPU supports it, else fp32
    hflip: bool = False               # paper: random horizontal flips for CIFAR-10 (never for digits)
    text_encoder: str | None = None   # None: unconditional; else a frozen encoder (e.g. "all-MiniLM-L6-v2")
    caption_dropout: float = 0.1      # Ho & Salimans: share of captions replaced by the null prompt
    first_caption_steps: int = 0      # curriculum: the first N steps use each image's first caption, then all of them
    text_layers: int = 0              # trainable transformer layers over the frozen text states (UNetConfig.text_layers)
    text_positions: bool = False      # learned token-position features on the text states (UNetConfig.text_positions)
    cross_attention: str = "joint"    # how the U-Net reads the tokens: joint (GLIDE) or separate (UNetConfig)
    text_pooled: bool = True          # the pooled sentence vector joins the time embedding (GLIDE); False: tokens only
    text_encoder_layer: int | list[int] | None = None  # the frozen encoder's hidden state read as token states (a
                                      # list: those states concatenated along the features); None: its last
    text_noise: float = 0.0           # conditioning augmentation: Gaussian noise on the token states (and pooled vector)
                                      # of training captions, in units of each feature's std over the captions; 0: none
    token_dropout: float = 0.0        # share of each training caption's tokens (all but the first) hidden from the
                                      # cross-attention; the pooled vector still says the whole sentence; 0: none
    text_key_rank: int = 0            # > 0: attention keys read the token states through their top-k principal
                                      # directions over the training captions (UNetConfig.text_key_rank); 0: all
    shapes_captions: int = SHAPES_CAPTIONS  # shapes only: phrasings per training scene (TRAIN, then PARAPHRASE wordings)
    shapes_pairs: float = SHAPES_P_PAIR     # shapes only: share of two-object scenes in the training pool
    shapes_reversed: float = 0.5      # shapes only: share of those pairs named right / lower object first
    shapes_vocabulary: str = "base"   # shapes only: the paraphrases' wordings, base (PARAPHRASE) or wide (WIDE:
                                      # PARAPHRASE + held-out sets 1-7 + more; only set 8 stays unseen)
    shapes_forward_steps: int = 0     # shapes only, curriculum: the first N steps draw no such pair (only single
                                      # objects, "left of" and "above": the first-named object is the left / upper)
    sample_guidance: float = 3.0      # guidance scale of the periodic sample grids (text models)
    sample_every: int = 800
    sample_n: int = 16
    sample_steps: int = 100           # respaced ancestral steps for the periodic grids
    save_every: int = 800
    log_every: int = 10
    seed: int = 0

    def validate(self) -> None:
        for name in ("steps", "batch_size", "sample_every", "save_every", "log_every", "sample_n", "sample_steps"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UserError(f"learning rate must be positive, got {self.lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise UserError("warmup-steps and weight-decay must be ≥ 0 and grad-clip > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.optimizer not in ("adam", "adamw"):
            raise UserError(f"unknown optimizer {self.optimizer!r}: choose adam or adamw")
        if self.loss not in LOSS_TYPES:
            raise UserError(f"unknown loss {self.loss!r}: choose one of {', '.join(LOSS_TYPES)}")
        if self.timestep_sampler not in ("uniform", "loss-second-moment"):
            raise UserError(f"unknown timestep sampler {self.timestep_sampler!r}: choose uniform or loss-second-moment")
        if self.snr_gamma is not None and not self.snr_gamma > 0:
            raise UserError(f"snr-gamma must be positive, got {self.snr_gamma} (Hang et al. use 5)")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise UserError(f"unknown precision {self.precision!r}: choose auto, fp32 or bf16")
        if self.first_caption_steps < 0:
            raise UserError(f"first-caption-steps must be ≥ 0, got {self.first_caption_steps}")
        if self.text_layers < 0:
            raise UserError(f"text-layers must be ≥ 0, got {self.text_layers}")
        if isinstance(self.text_encoder_layer, (list, tuple)) and not self.text_encoder_layer:
            raise UserError("--text-encoder-layer needs at least one layer (e.g. 3, or 3,6 for two concatenated)")
        if self.shapes_captions < 1 or not 0.0 <= self.shapes_pairs <= 1.0 or not 0.0 <= self.shapes_reversed <= 1.0:
            raise UserError(f"shapes-captions must be ≥ 1 and shapes-pairs and shapes-reversed in [0, 1], got "
                            f"{self.shapes_captions}, {self.shapes_pairs} and {self.shapes_reversed}")
        from .shapes.captions import paraphrase_words
        try:
            paraphrase_words(self.shapes_vocabulary)
        except ValueError as e:       # the captions module's one check, as a CLI-level error
            raise UserError(str(e)) from None
        if self.shapes_forward_steps < 0:
            raise UserError(f"shapes-forward-steps must be ≥ 0, got {self.shapes_forward_steps}")
        if self.shapes_forward_steps and self.shapes_pairs == 1.0 and self.shapes_reversed == 1.0:
            raise UserError("--shapes-forward-steps has no scene to draw: every training scene would be a pair named "
                            "right / lower object first; lower --shapes-reversed or --shapes-pairs")
        if self.dataset != "shapes" and any(getattr(self, f.name) != f.default for f in fields(self)
                                            if f.name.startswith("shapes_")):
            raise UserError(f"--shapes-captions, --shapes-pairs, --shapes-reversed, --shapes-vocabulary and "
                            f"--shapes-forward-steps shape "
                            f"the procedural shapes data: use them with --dataset shapes, not {self.dataset!r}")
        if self.cross_attention not in ("joint", "separate"):
            raise UserError(f"unknown cross-attention {self.cross_attention!r}: choose joint or separate")
        if self.text_key_rank < 0:
            raise UserError(f"text-key-rank must be ≥ 0 (0: keys read the full token states), got {self.text_key_rank}")
        if self.text_key_rank and (self.text_layers or self.text_positions):
            raise UserError("--text-key-rank fits its basis once on the frozen token states, which --text-layers and "
                            "--text-positions change while training: use it without them")
        if not 0.0 <= self.token_dropout < 1.0:
            raise UserError(f"token-dropout must be in [0, 1), got {self.token_dropout}")
        if not self.text_noise >= 0.0:
            raise UserError(f"text-noise must be ≥ 0 (a multiple of the token states' std), got {self.text_noise}")
        if not self.text_encoder:      # options that shape how a text encoder's states are read need one
            for used, what in ((self.text_encoder_layer is not None, "--text-encoder-layer picks a layer of"),
                               (self.text_layers, "--text-layers adds layers over"),
                               (self.text_positions, "--text-positions marks the order of"),
                               (self.cross_attention != "joint", "--cross-attention sets how the U-Net reads"),
                               (not self.text_pooled, "--no-text-pooled drops the pooled vector of"),
                               (self.text_noise, "--text-noise perturbs the states of"),
                               (self.text_key_rank, "--text-key-rank projects the states of"),
                               (self.token_dropout, "--token-dropout hides tokens of")):
                if used:
                    raise UserError(f"{what} a text encoder: pass --text-encoder too (e.g. all-MiniLM-L6-v2)")
        if not 0.0 <= self.caption_dropout <= 1.0:
            raise UserError(f"caption-dropout must be in [0, 1], got {self.caption_dropout}")
        if self.image_size is not None and self.image_size <= 0:
            raise UserError(f"image-size must be positive, got {self.image_size}")


@dataclass
class RunConfig:
    model: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "diffusion": asdict(self.diffusion), "train": asdict(self.train)}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        try:
            return cls(model=UNetConfig.from_dict(d["model"]),
                       diffusion=_from_dict(DiffusionConfig, d.get("diffusion", {})),
                       train=_from_dict(TrainConfig, d.get("train", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"config.json does not describe a ddpmkit run ({e}): point to a run folder "
                            f"written by 'ddpmkit train'") from None


def _from_dict(cls, d: dict):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}")
    return cls(**d)
