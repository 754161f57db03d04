"""12-lead reconstruction from any lead subset or PPG: the recipe (`recipe`), the classical lagged-linear and
limb-identity references (`baseline`), ECGGenEval-style metrics and figures (`evaluation`) and the side-by-side
evaluation run (`report`). May import cardiofm.data, cardiofm.models and cardiofm.engine."""
