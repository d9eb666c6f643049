"""Datasets as 256-way categorical sub-pixels, one module per concept.

Read them bottom up (each imports only the ones listed before it):

* ``image_dataset`` -- :class:`ImageDataset`, the in-memory dataset every source becomes, and which
  of a source's images it holds (``limit``, ``indices``);
* ``cache`` -- the decoded-data cache (``$PIXELRNN_CACHE``): a large decode is done once;
* ``amat`` -- binarized MNIST's name, splits and original ``.amat`` files (MATLAB 5);
* ``folders`` -- image folders: decoding with Pillow, RGB / grey conversion, resizing,
  unreadable files skipped (:func:`pil_to_array`);
* ``torchvision_sources`` -- CIFAR-10, MNIST, Fashion-MNIST from torchvision;
* ``shipped`` -- the ``.npz`` sets shipped with the course (binarized MNIST, ``fashion_mnist_4``)
  and the checks that find them damaged;
* ``levels`` -- ``quantize``, ``bins_to_grey``, ``requantize``, ``check_levels``,
  ``source_levels``, ``with_levels``;
* ``loading`` -- ``load_dataset``, ``count_images``, splits and loaders.

``pixelrnn_utils.data`` re-exports the public names of all of them; import from there. This file
imports nothing, so importing one module of the subpackage does not import the others.
"""
