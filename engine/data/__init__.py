"""Datasets: the built-in phantom, folder/CSV/DICOM loaders, patient-level folds, and the prepared-image cache."""
