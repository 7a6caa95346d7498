//! Consent that looks after itself: what each connected tenant actually grants the provider's
//! app, compared with what its permission profile needs ([`drift`]).

pub mod drift;
