"""Clinical measurements from label maps: LV volumes and ejection fraction by the method of
disks (biplane and single-plane modified Simpson) and area-length; see ``volumes`` for the
formulas, ``disks`` and ``geometry`` for how a view is measured, ``disk_figure`` for a picture
of the disks. Whole-sequence curves and ED/ES detection live in ``sequence``."""

from echoseg.clinical.disks import N_DISKS, ViewGeometry, measure_view
from echoseg.clinical.volumes import (
    PatientMeasurement,
    ViewMeasurement,
    area_length_volume,
    biplane_volume,
    ejection_fraction,
    frame_volume,
    patient_measurements,
    single_plane_volume,
    volume_unit,
)

__all__ = [
    "N_DISKS",
    "PatientMeasurement",
    "ViewGeometry",
    "ViewMeasurement",
    "area_length_volume",
    "biplane_volume",
    "ejection_fraction",
    "frame_volume",
    "measure_view",
    "patient_measurements",
    "single_plane_volume",
    "volume_unit",
]
