"""Torch networks: encoders, decoders and the VAE that joins them.

Nothing here knows about NumPy, devices or epochs: tensors in, tensors out.
"""

import torch
from torch import nn

from ._elbo import (
    ELBOOutput,
    gaussian_kl,
    importance_weighted_bound,
    standard_normal_log_prob,
)

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}


def mlp(n_in, hidden_layer_sizes, n_out, activation="relu"):
    """A multilayer perceptron: Linear and activation layers, then a linear output."""
    layers = []
    for width in hidden_layer_sizes:
        layers += [nn.Linear(n_in, width), ACTIVATIONS[activation]()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class VAEModule(nn.Module):
    """A VAE with a diagonal Gaussian encoder and a standard normal prior.

    Parameters
    ----------
    observation : skvae._likelihoods.Observation
        The likelihood p(x | z) given the decoder's output.
    encoder : nn.Module
        Maps ``observation.network_input(x)`` to ``2 * n_components`` numbers: the
        posterior mean and log-variance.
    decoder : nn.Module
        Maps z to ``observation.n_params`` numbers.
    """

    def __init__(self, observation, encoder, decoder, n_components):
        super().__init__()
        self.observation = observation
        self.encoder = encoder
        self.decoder = decoder
        self.n_components = n_components

    def encode(self, x):
        """Posterior mean and log-variance of q(z | x)."""
        # Under autocast the network computes in bfloat16; the rest of the
        # objective (sampling, KL, likelihood) stays in the data's precision.
        out = self.encoder(self.observation.network_input(x)).to(x.dtype)
        mean, log_var = out.split(self.n_components, dim=-1)
        # Bound the log-variance so exp() can neither overflow nor underflow.
        return mean, log_var.clamp(-30.0, 20.0)

    def decode(self, z):
        """Parameters of p(x | z), as expected by ``observation``."""
        return self.decoder(z).to(z.dtype)

    def elbo(self, x, noise, kl_weight=1.0):
        """The (importance-weighted) ELBO of each row of ``x``.

        Parameters
        ----------
        x : Tensor of shape (batch, n_features)
        noise : Tensor of shape (n_samples, batch or 1, n_components)
            Standard normal draws for the reparameterisation; one sample gives the
            ELBO with the analytic KL, several give the IWAE bound.
        kl_weight : float
            Weight of the KL (or prior and posterior) terms in the loss; the
            returned ``bound`` always uses weight 1.
        """
        mean, log_var = self.encode(x)
        std = (0.5 * log_var).exp()
        z = mean + std * noise
        log_px = self.observation.log_prob(self.decode(z), x)
        kl = gaussian_kl(mean, log_var)
        if noise.shape[0] == 1:
            reconstruction = log_px[0]
            loss = -(reconstruction - kl_weight * kl).mean()
            bound = (reconstruction - kl).detach()
        else:
            log_prior_ratio = standard_normal_log_prob(z) - standard_normal_log_prob(
                noise
            ) + 0.5 * log_var.sum(-1)
            loss = -importance_weighted_bound(log_px + kl_weight * log_prior_ratio).mean()
            bound = importance_weighted_bound(log_px + log_prior_ratio).detach()
            reconstruction = log_px.mean(0)
        return ELBOOutput(loss, bound, reconstruction.detach(), kl.detach())


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
    doubling the image) to ``params_per_pixel`` numbers per pixel, cropped to size."""

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
        lead = z.shape[:-1]
        h = self.head(z).reshape((-1,) + self.start)
        out = self.deconv(h)[..., : self.image_shape[1], : self.image_shape[2]]
        return out.reshape(lead + (-1,))
