"""What refine's loop asks of a method (IsoNet 1's, the halves method, or a new one).

Each iteration the loop draws the subtomograms it uses, asks the method for
to write what its pairs are made from (the previous network's predictions,
or at iteration 1 what stands in for them) and for a pair maker,
trains on those pairs with the method's loss, re-estimates the batch
normalisation statistics if the method asks for it, and saves the network
with the method's model information for predict.
"""

import logging

from isonet.refine.intermediate import PredictionSet
from isonet.refine.noise import noise_schedule
from isonet.refine.outputs import model_path

log = logging.getLogger("isonet")


class RefineMethod:
    """One way of training refine's network; subclasses set :attr:`name` and implement the methods below.

    Parameters
    ----------
    config : isonet.refine.config.RefineConfig
        Resolved settings.
    subtomos : isonet.refine.subtomograms.Subtomograms
    settings : dict
        JSON values that change a prediction (precision, normalisation, STAR file), recorded with every
        prediction set (:class:`isonet.refine.intermediate.PredictionSet`).
    """

    #: Name of the method (``--method``).
    name = None
    #: Re-estimate the batch normalisation statistics from training inputs after each iteration's training
    #: (:class:`isonet.network.runtime.BatchStatistics`).
    refreshes_batch_norm = False

    def __init__(self, config, subtomos, settings):
        self.config = config
        self.subtomos = subtomos
        self.result_dir = config.result_dir
        self.settings = dict(settings, method=self.name)
        #: Noise level of each iteration (index 0 unused); checks the noise options of every method.
        self.noise_schedule = noise_schedule(config.iterations, config.noise_level, config.noise_start_iter)

    @staticmethod
    def derived_defaults(config):
        """Values of the settings left ``None`` that depend on the method: name -> value."""
        return {"final_learning_rate": config.learning_rate, "full_input_fraction": 0.0}

    def description(self):
        """The method in one line of the log."""
        raise NotImplementedError

    def loss(self):
        """The Keras loss: ``"mae"`` or a function of :mod:`isonet.refine.losses`."""
        raise NotImplementedError

    def write_pair_sources(self, network, iteration, used, filled):
        """Write what the pairs of iteration ``iteration`` are made from (the chief worker only).

        Parameters
        ----------
        network : isonet.network.runtime.Network
            The network after iteration ``iteration - 1``.
        iteration : int
        used : ndarray of int
            Rows of subtomo.star used this iteration.
        filled : bool
            ``network`` has been trained (or pretrained): its predictions fill the missing wedges.
        """
        raise NotImplementedError

    def pair_maker(self, iteration, used, filled, writes=True):
        """The pair maker of iteration ``iteration``, from the files :meth:`write_pair_sources` wrote.

        Parameters
        ----------
        iteration, used, filled :
            As for :meth:`write_pair_sources`.
        writes : bool
            The maker may cache what it makes on disk (noise cubes); False on the workers that are not the chief.

        Returns
        -------
        isonet.refine.pairs.PairMaker or a maker with the same interface
        """
        raise NotImplementedError

    def predict_set(self, network, number, rows):
        """Write prediction set ``number`` (the network of iteration ``number``) of the subtomograms ``rows``."""
        raise NotImplementedError

    def set_files(self, number):
        """Every file prediction set ``number`` may hold (all subtomograms), for deleting old sets."""
        raise NotImplementedError

    def model_info(self):
        """What predict needs to know of this method's networks (``model_iterNN.json``), or None."""
        return None

    def _record(self, number):
        """The record of prediction set ``number`` (reuses the files still valid)."""
        return PredictionSet(self.result_dir, number, model_path(self.result_dir, number), self.settings)
