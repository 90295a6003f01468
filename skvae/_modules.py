"""Torch networks: the architectures, and the VAE that joins encoder, decoder and likelihood.

Architectures live in one place, the :data:`ARCHITECTURES` registry: each entry
builds an encoder and a decoder for an observation model and checks its own
rules (the convolutional one needs an image shape and one parameter per pixel).
The estimator asks :func:`build_networks` for networks; it does not build them.
A user's own networks come in as factories ``(n_inputs, n_outputs) ->
nn.Module`` and are checked on a small batch before training (:meth:`VAEModule.check`).

Nothing here knows about NumPy, devices or epochs: tensors in, tensors out.
"""

import math
from numbers import Integral

import numpy as np
import torch
from torch import nn

from ._data import seeded_torch
from ._likelihoods import check_output, describe

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def layer_sizes(sizes, name):
    """``sizes`` (an int or a sequence) as a tuple of positive ints, or a clear error."""
    values = np.atleast_1d(sizes).tolist()
    if not all(isinstance(s, Integral) and s >= 1 for s in values):
        raise ValueError(f"{name} must hold positive integers; got {sizes!r}.")
    return tuple(int(s) for s in values)


def mlp(n_in, hidden_layer_sizes, n_out, activation="relu"):
    """A multilayer perceptron: Linear and activation layers, then a linear output."""
    layers = []
    for width in hidden_layer_sizes:
        layers += [nn.Linear(n_in, width), ACTIVATIONS[activation]()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def _conv_output_size(size, n_layers):
    for _ in range(n_layers):
        size = (size + 1) // 2
    return size


class ConvEncoder(nn.Module):
    """Strided 3x3 convolutions (each halves the image), then a linear layer."""

    def __init__(self, image_shape, channels, n_out, activation="relu"):
        super().__init__()
        self.image_shape = tuple(image_shape)
        layers, n_in = [], image_shape[0]
        for width in channels:
            layers += [nn.Conv2d(n_in, width, 3, stride=2, padding=1), ACTIVATIONS[activation]()]
            n_in = width
        height = _conv_output_size(image_shape[1], len(channels))
        width = _conv_output_size(image_shape[2], len(channels))
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(n_in * height * width, n_out)

    def forward(self, x):
        return self.head(self.features(x.reshape((-1,) + self.image_shape)))


class ConvDecoder(nn.Module):
    """A linear layer to a small feature map, then transposed convolutions (each
    doubling the image) to one number per pixel, cropped to size."""

    def __init__(self, n_components, image_shape, channels, activation="relu"):
        super().__init__()
        self.image_shape = tuple(image_shape)
        channels = list(channels)[::-1]
        self.start = (
            channels[0],
            _conv_output_size(image_shape[1], len(channels)),
            _conv_output_size(image_shape[2], len(channels)),
        )
        self.head = nn.Sequential(
            nn.Linear(n_components, channels[0] * self.start[1] * self.start[2]),
            ACTIVATIONS[activation](),
        )
        layers = []
        for n_in, n_out in zip(channels, channels[1:] + [image_shape[0]]):
            layers += [nn.ConvTranspose2d(n_in, n_out, 4, stride=2, padding=1)]
            layers.append(ACTIVATIONS[activation]())
        self.deconv = nn.Sequential(*layers[:-1])

    def forward(self, z):
        h = self.head(z).reshape((-1,) + self.start)
        out = self.deconv(h)[..., : self.image_shape[1], : self.image_shape[2]]
        return out.reshape(z.shape[0], -1)


def mlp_networks(observation, n_components, options):
    """Fully connected encoder and decoder (the decoder mirrors the encoder)."""
    hidden = layer_sizes(options["hidden_layer_sizes"], "hidden_layer_sizes")
    activation = options["activation"]
    n_inputs = observation.n_inputs + options.get("n_mask_inputs", 0)
    encoder = mlp(n_inputs, hidden, 2 * n_components, activation)
    # Covariates go to the decoder beside the code.
    decoder = mlp(n_components + observation.n_conditions, hidden[::-1], observation.n_params,
                  activation)
    return encoder, decoder


def conv_networks(observation, n_components, options):
    """Convolutional encoder and transposed-convolution decoder for images
    given as rows of flattened pixels (C order) of ``options["image_shape"]``."""
    shape = _image_shape(options["image_shape"], observation.n_features)
    channels = layer_sizes(options["conv_channels"], "conv_channels")
    if observation.n_conditions:
        raise ValueError("architecture='conv' takes no covariates; use architecture='mlp'.")
    if not channels:
        raise ValueError("conv_channels needs at least one layer.")
    for lik in observation.likelihoods:
        if not (lik.n_params == lik.n_inputs == lik.n_features):
            raise ValueError(
                "architecture='conv' needs a likelihood with one parameter per pixel; "
                f"likelihood {describe(type(lik))} has {lik.n_params} for "
                f"{lik.n_features} columns."
            )
    activation = options["activation"]
    # The mask of observed pixels, when there is one, comes as more channels.
    channels_in = shape[0] * (2 if options.get("n_mask_inputs") else 1)
    encoder = ConvEncoder((channels_in,) + shape[1:], channels, 2 * n_components, activation)
    decoder = ConvDecoder(n_components, shape, channels, activation)
    return encoder, decoder


def _image_shape(shape, n_features):
    if shape is None or len(shape) != 3 or not all(
        isinstance(s, Integral) and s >= 1 for s in shape
    ):
        raise ValueError(
            "architecture='conv' needs image_shape=(channels, height, width) of "
            f"positive integers; got image_shape={shape!r}."
        )
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"image_shape={tuple(shape)} holds {int(np.prod(shape))} pixels but X has "
            f"{n_features} features; they must match."
        )
    return tuple(int(s) for s in shape)


ARCHITECTURES = {"mlp": mlp_networks, "conv": conv_networks}


_INITIALISED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)


def init_parameters(network, generator):
    """Initialise ``network``'s layers as torch does by default (weights and
    biases uniform on +-1/sqrt(fan_in)), drawing from the private ``generator``
    rather than torch's process-wide random state, so that fits in many threads
    give the same weights as serial ones."""
    with torch.no_grad():
        for layer in network.modules():
            if isinstance(layer, _INITIALISED_LAYERS):
                # Input channels times the kernel's size, as torch's own default.
                fan_in = layer.weight.shape[1] * math.prod(layer.weight.shape[2:])
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)
            elif next(layer.parameters(recurse=False), None) is not None:
                raise TypeError(f"no initialisation rule for {type(layer).__name__} layers")


def _built_in(architecture, observation, n_components, options, generator):
    """The architecture's networks, built without touching torch's global
    random state: on the meta device, then given memory and initialised from
    ``generator`` (left uninitialised, for weights about to be loaded, when it
    is None)."""
    with torch.device("meta"):
        networks = ARCHITECTURES[architecture](observation, n_components, options)
    networks = tuple(network.to_empty(device="cpu") for network in networks)
    if generator is not None:
        for network in networks:
            init_parameters(network, generator)
    return networks


def build_networks(architecture, observation, n_components, options, encoder=None,
                   decoder=None, n_mask_inputs=0, generator=None):
    """The encoder and decoder for ``observation``.

    ``architecture`` names an entry of :data:`ARCHITECTURES`, which reads what
    it needs from ``options`` (the estimator's parameters). ``encoder`` and
    ``decoder``, when given, are a user's factories ``(n_inputs, n_outputs) ->
    nn.Module`` that replace the architecture's network of that role.
    ``n_mask_inputs`` more encoder inputs carry the mask of observed entries.
    ``generator`` initialises the built-in networks (None leaves them
    uninitialised, for loading weights); a user's factories initialise their
    own, from torch's global random state seeded from ``generator``.
    """
    built = None
    if encoder is None or decoder is None:
        built = _built_in(architecture, observation, n_components,
                          {**options, "n_mask_inputs": n_mask_inputs}, generator)
    roles = [
        ("encoder", encoder, observation.n_inputs + n_mask_inputs, 2 * n_components),
        ("decoder", decoder, n_components + observation.n_conditions, observation.n_params),
    ]
    networks = []
    for index, (role, factory, n_in, n_out) in enumerate(roles):
        if factory is None:
            networks.append(built[index])
            continue
        if isinstance(factory, nn.Module):
            raise TypeError(
                f"{role} is a {type(factory).__name__} instance; pass its class or a "
                f"factory instead (called as {role}(n_inputs, n_outputs), e.g. "
                "functools.partial(MyNet, width=64)), so that each fit builds its own "
                "network for the data's sizes."
            )
        seed = 0 if generator is None else int(
            torch.randint(2**62, (1,), generator=generator, device=generator.device))
        with seeded_torch(seed):
            network = factory(n_in, n_out)
        if not isinstance(network, nn.Module):
            raise TypeError(
                f"{role} {describe(factory)} returned {type(network).__name__}; it must "
                f"return a torch.nn.Module mapping {n_in} inputs to {n_out} outputs."
            )
        networks.append(network)
    return tuple(networks)


def build_module(observation, structure, generator=None):
    """The VAE for ``observation`` as ``structure`` describes it: a dict with
    the architecture, ``n_components``, the architecture's ``options``, the
    user's ``encoder`` and ``decoder`` factories (or None) and ``n_mask_inputs``
    (see :func:`build_networks`)."""
    n_mask_inputs = structure["n_mask_inputs"]
    encoder, decoder = build_networks(
        structure["architecture"], observation, structure["n_components"],
        structure["options"], structure["encoder"], structure["decoder"], n_mask_inputs,
        generator,
    )
    return VAEModule(observation, encoder, decoder, structure["n_components"],
                     n_mask_inputs > 0)


class VAEModule(nn.Module):
    """A VAE with a diagonal Gaussian encoder and a standard normal prior.

    Parameters
    ----------
    observation : skvae._likelihoods.Observation
        The likelihood p(x | z) given the decoder's output.
    encoder : nn.Module
        Maps ``observation.network_input(x)``, shape (batch, n_inputs), to
        ``2 * n_components`` numbers per row: the posterior mean and log-variance.
    decoder : nn.Module
        Maps z, shape (batch, n_components), to ``observation.n_params`` numbers
        per row.
    n_components : int
        Number of latent dimensions.
    """

    def __init__(self, observation, encoder, decoder, n_components, masked=False):
        super().__init__()
        self.observation = observation
        self.encoder = encoder
        self.decoder = decoder
        self.n_components = n_components
        self.masked = masked

    def encoder_input(self, x, mask=None):
        """What the encoder sees: the observation's network input and, for a
        model trained on data with missing entries (``masked``), the mask of
        observed entries beside it (all ones for complete rows)."""
        inputs = self.observation.network_input(x, mask)
        if not self.masked:
            return inputs
        seen = torch.ones_like(x) if mask is None else mask.to(x.dtype)
        return torch.cat([inputs, seen], dim=-1)

    def encode(self, x, mask=None):
        """Posterior mean and log-variance of q(z | x), given the observed
        entries of ``x`` when a ``mask`` says which they are."""
        # Under autocast the network computes in bfloat16; the rest of the
        # objective (sampling, KL, likelihood) stays in the data's precision.
        out = self.encoder(self.encoder_input(x, mask)).to(x.dtype)
        mean, log_var = out.split(self.n_components, dim=-1)
        # Bound the log-variance so exp() can neither overflow nor underflow.
        return mean, log_var.clamp(-30.0, 20.0)

    def decode(self, z, conditions=None):
        """Parameters of p(x | z), as expected by ``observation``.

        Leading sample dimensions (importance samples) are flattened into the
        batch, so decoders see 2-D input only. A model with covariates takes
        their ``conditions`` (shape (batch, n_conditions), see
        :meth:`Observation.conditions`) beside each code.
        """
        lead = z.shape[:-1]
        if self.observation.n_conditions:
            if conditions is None:
                raise ValueError("this model has covariates: give their values.")
            z = torch.cat([z, conditions.to(z.dtype).expand(lead + conditions.shape[-1:])], -1)
        out = self.decoder(z.reshape(-1, z.shape[-1])).to(z.dtype)
        return out.reshape(lead + out.shape[-1:])

    def conditions(self, x):
        """The covariates of rows ``x`` as the decoder takes them (None without)."""
        return self.observation.conditions(x)

    def check(self, x, generator):
        """Run each part once on the rows ``x`` and raise a clear error, naming
        the part, when one fails or returns the wrong shape."""
        n_rows, k = x.shape[0], self.n_components
        with torch.no_grad():
            inputs = self.encoder_input(x)
            check_output(f"encoder {describe(type(self.encoder))}",
                         lambda: self.encoder(inputs), (n_rows, 2 * k))
            width = k + self.observation.n_conditions
            params = check_output(
                f"decoder {describe(type(self.decoder))}",
                lambda: self.decoder(torch.zeros(n_rows, width, dtype=x.dtype)),
                (n_rows, self.observation.n_params),
            )
            self.observation.check(params, x, generator)
