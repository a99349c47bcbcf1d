"""De-identification of what ctpmaps writes, after DICOM PS3.15 Annex E (Basic Profile).

ctpmaps copies into its DICOM outputs only the patient and study information entities of
the source (the Patient, Clinical Trial Subject, General Study, Patient Study and Clinical
Trial Study modules: `IDENTITY_KEYWORDS`), besides what it makes itself (geometry, pixels,
its own UIDs, descriptions). With ``anonymize`` those modules are replaced by:

- *PatientName* and *PatientID*: one pseudonym per study, ``ANON-`` and 12 hexadecimal
  digits of a SHA-256 of the source *StudyInstanceUID* (stable across runs, not derived
  from the patient's name or ID, so a list of IDs cannot be hashed to find it);
- *PatientBirthDate*, *PatientSex*, *StudyDate*, *StudyTime*, *AccessionNumber*,
  *ReferringPhysicianName*, *StudyID*: empty (type 2: present, zero length; action Z);
- every other attribute of those modules (other IDs and names, age, size, weight,
  addresses, physicians, free-text descriptions and comments): removed (action X);
- source UIDs (study, series, instances, frame of reference): replaced by UIDs derived
  from them under ctpmaps' root (action U, consistent within and across outputs, so the
  maps still reference the source series and frame of reference under their new UIDs);
- *PatientIdentityRemoved* ``YES``, *DeidentificationMethod* and
  *DeidentificationMethodCodeSequence* (DCM 113100, Basic Application Confidentiality
  Profile).

Cited source headers (the images Parametric Maps and SEG reference) are reduced to
`CITED_KEYWORDS` before anything is copied from them. Institution, device and operator
names are never copied into CT frames, anonymized or not. Acquisition
dates of written CT frames come from the writer's ``start`` (a fixed default date when
anonymizing); only the times relative to the first frame are kept.
"""

from __future__ import annotations

import hashlib

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from .uids import UID_PREFIX

__all__ = [
    "IDENTITY_KEYWORDS",
    "CITED_KEYWORDS",
    "ROOT_UIDS",
    "pseudonym",
    "pseudonymous_uid",
    "deidentified",
]

#: Attributes at the root of the Patient, Clinical Trial Subject, General Study, Patient
#: Study and Clinical Trial Study modules (DICOM PS3.3 C.7.1.1, C.7.1.3, C.7.2.1-C.7.2.3):
#: what derived objects copy from their source.
IDENTITY_KEYWORDS = (
    # Patient
    "PatientName", "PatientID", "IssuerOfPatientID", "TypeOfPatientID",
    "IssuerOfPatientIDQualifiersSequence", "SourcePatientGroupIdentificationSequence",
    "GroupOfPatientsIdentificationSequence", "PatientBirthDate", "PatientBirthTime",
    "PatientBirthDateInAlternativeCalendar", "PatientDeathDateInAlternativeCalendar",
    "PatientAlternativeCalendar", "PatientSex", "QualityControlSubject", "OtherPatientNames",
    "OtherPatientIDsSequence", "ReferencedPatientPhotoSequence", "EthnicGroupCodeSequence",
    "EthnicGroup", "PatientSpeciesDescription", "PatientSpeciesCodeSequence",
    "PatientBreedDescription", "PatientBreedCodeSequence", "BreedRegistrationSequence",
    "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization", "PatientComments",
    "ReferencedPatientSequence", "PatientIdentityRemoved", "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    # Clinical Trial Subject
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName",
    "ClinicalTrialSiteID", "ClinicalTrialSiteName", "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID",
    # General Study
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName", "StudyID",
    "AccessionNumber", "IssuerOfAccessionNumberSequence", "StudyDescription",
    "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
    "NameOfPhysiciansReadingStudy", "PhysiciansReadingStudyIdentificationSequence",
    "RequestingService", "RequestingServiceCodeSequence", "ReferencedStudySequence",
    "ProcedureCodeSequence", "ReasonForPerformedProcedureCodeSequence",
    # Patient Study
    "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence", "PatientAge",
    "PatientSize", "PatientSizeCodeSequence", "PatientBodyMassIndex", "PatientWeight",
    "MeasuredAPDimension", "MeasuredLateralDimension", "MedicalAlerts", "Allergies",
    "Occupation", "SmokingStatus", "AdditionalPatientHistory", "PregnancyStatus",
    "LastMenstrualDate", "PatientSexNeutered", "ReasonForVisit", "ReasonForVisitCodeSequence",
    "AdmissionID", "IssuerOfAdmissionIDSequence", "ServiceEpisodeID",
    "ServiceEpisodeDescription", "IssuerOfServiceEpisodeIDSequence", "PatientState",
    # Clinical Trial Study
    "ClinicalTrialTimePointID", "ClinicalTrialTimePointDescription",
    "ConsentForClinicalTrialUseSequence",
)  # fmt: skip

#: What an anonymized copy of a source header keeps for the objects that cite it (an allow
#: list: equipment, institution, operator and physician names, dates, descriptions and
#: private elements of the source never reach an anonymized output).
CITED_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID",
    "FrameOfReferenceUID", "Modality", "ImageType", "SeriesNumber", "InstanceNumber",
    "Manufacturer", "ManufacturerModelName", "BodyPartExamined", "PositionReferenceIndicator",
    "Rows", "Columns", "NumberOfFrames", "PixelSpacing", "ImagePositionPatient",
    "ImageOrientationPatient", "SliceThickness", "SpacingBetweenSlices", "SamplesPerPixel",
    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "RescaleIntercept", "RescaleSlope", "RescaleType",
)  # fmt: skip

#: Root UIDs of a source header that name the source objects (mapped when anonymizing).
ROOT_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")

_EMPTY = (
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
)
_METHOD = "ctpmaps: PS3.15 Basic Profile, pseudonym per study, new UIDs"


def pseudonym(study_uid: str) -> str:
    """The patient pseudonym of a study: ``ANON-`` and 12 hex digits of SHA-256(UID)."""
    digest = hashlib.sha256(f"ctpmaps-anonymize/{study_uid}".encode()).hexdigest()
    return f"ANON-{digest[:12].upper()}"


def pseudonymous_uid(uid: str) -> str:
    """The UID written in place of a source ``uid`` (the same for the same ``uid``)."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=["ctpmaps-anonymize", str(uid)])


def deidentified(study_uid: str) -> Dataset:
    """The patient and study attributes of an anonymized output of study ``study_uid``."""
    ds = Dataset()
    name = pseudonym(study_uid)
    ds.PatientName = f"{name}^"  # a family name alone (a bare single component is ambiguous)
    ds.PatientID = name
    for keyword in _EMPTY:
        setattr(ds, keyword, "")
    ds.StudyInstanceUID = pseudonymous_uid(study_uid)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = _METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = [code]
    return ds
