//! scisql's photometry functions, with scisql's definitions: AB magnitudes from fluxes in
//! erg/cm²/s/Hz (`scisql_fluxToAbMag`, ...) and in nanojansky (`scisql_nanojanskyToAbMag`,
//! ...), the inverse conversions, and the propagated uncertainties (`...Sigma`). Names
//! are registered in lower case, so they are called in any case. As in scisql, NULL comes
//! back for a NULL, NaN or infinite argument, a flux that is not positive (for a
//! magnitude), a negative uncertainty, and a result that is not finite.

use crate::row_functions::{Arg, Num, Out, Output, RowFunction};

/// -2.5 log10(x) of an AB flux is m - this constant, for fluxes in erg/cm²/s/Hz.
const AB_ERG: f64 = 48.6;
/// The AB zero point in nanojansky: 3631 Jy is 0 mag, so m = -2.5 log10(f / nJy) + 31.4.
const AB_NJY: f64 = 31.4;
/// 2.5 / ln(10): d(mag) = AB_SIGMA * d(flux) / flux.
const AB_SIGMA: f64 = 2.5 / std::f64::consts::LN_10;

fn finite(v: f64) -> Result<Option<Out>, String> {
    Ok(v.is_finite().then_some(Out::F(v)))
}

/// The arguments when all are finite (scisql's NULL for NaN and infinities otherwise).
fn finite_args<const N: usize>(a: &[Num]) -> Option<[f64; N]> {
    let values: [f64; N] = std::array::from_fn(|i| a[i].f());
    values.iter().all(|v| v.is_finite()).then_some(values)
}

fn flux_to_mag(flux: f64, zero: f64) -> f64 {
    if flux > 0.0 {
        -2.5 * flux.log10() - zero
    } else {
        f64::NAN
    }
}

fn mag_to_flux(mag: f64, zero: f64) -> f64 {
    10f64.powf(-0.4 * (mag + zero))
}

fn flux_to_ab_mag(a: &[Num]) -> Result<Option<Out>, String> {
    let Some([flux]) = finite_args(a) else {
        return Ok(None);
    };
    finite(flux_to_mag(flux, AB_ERG))
}

fn nanojansky_to_ab_mag(a: &[Num]) -> Result<Option<Out>, String> {
    let Some([flux]) = finite_args(a) else {
        return Ok(None);
    };
    finite(flux_to_mag(flux, -AB_NJY))
}

fn flux_to_ab_mag_sigma(a: &[Num]) -> Result<Option<Out>, String> {
    match finite_args(a) {
        Some([flux, sigma]) if flux > 0.0 && sigma >= 0.0 => finite(AB_SIGMA * sigma / flux),
        _ => Ok(None),
    }
}

fn ab_mag_to_flux(a: &[Num]) -> Result<Option<Out>, String> {
    let Some([mag]) = finite_args(a) else {
        return Ok(None);
    };
    finite(mag_to_flux(mag, AB_ERG))
}

fn ab_mag_to_nanojansky(a: &[Num]) -> Result<Option<Out>, String> {
    let Some([mag]) = finite_args(a) else {
        return Ok(None);
    };
    finite(mag_to_flux(mag, -AB_NJY))
}

fn ab_mag_to_flux_sigma(a: &[Num]) -> Result<Option<Out>, String> {
    match finite_args(a) {
        Some([mag, sigma]) if sigma >= 0.0 => finite(sigma * mag_to_flux(mag, AB_ERG) / AB_SIGMA),
        _ => Ok(None),
    }
}

fn ab_mag_to_nanojansky_sigma(a: &[Num]) -> Result<Option<Out>, String> {
    match finite_args(a) {
        Some([mag, sigma]) if sigma >= 0.0 => finite(sigma * mag_to_flux(mag, -AB_NJY) / AB_SIGMA),
        _ => Ok(None),
    }
}

const ONE: &[Arg] = &[Arg::Float];
const TWO: &[Arg] = &[Arg::Float, Arg::Float];

/// The photometry functions.
pub(crate) const PHOTOMETRY: [RowFunction; 8] = [
    RowFunction {
        name: "scisql_fluxtoabmag",
        form: "scisql_fluxToAbMag(flux DOUBLE) -> DOUBLE",
        description: "The AB magnitude of a flux in erg/cm2/s/Hz: -2.5 log10(flux) - 48.6; \
                      NULL for a flux that is not positive.",
        args: ONE,
        zero_if_null: &[],
        null_is_error: false,
        output: Output::Float,
        eval: flux_to_ab_mag,
    },
    RowFunction {
        name: "scisql_fluxtoabmagsigma",
        form: "scisql_fluxToAbMagSigma(flux DOUBLE, flux_sigma DOUBLE) -> DOUBLE",
        description: "The uncertainty of scisql_fluxToAbMag(flux): 2.5/ln(10) flux_sigma/flux.",
        args: TWO,
        zero_if_null: &[],
        null_is_error: false,
        output: Output::Float,
        eval: flux_to_ab_mag_sigma,
    },
    RowFunction {
        name: "scisql_abmagtoflux",
        form: "scisql_abMagToFlux(mag DOUBLE) -> DOUBLE",
        description: "The flux in erg/cm2/s/Hz of an AB magnitude: 10^(-0.4 (mag + 48.6)).",
        args: ONE,
        zero_if_null: &[],
        null_is_error: false,
        output: Output::Float,
        eval: ab_mag_to_flux,
    },
    RowFunction {
        name: "scisql_abmagtofluxsigma",
        form: "scisql_abMagToFluxSigma(mag DOUBLE, mag_sigma DOUBLE) -> DOUBLE",
        description: "The uncertainty of scisql_abMagToFlux(mag): mag_sigma flux ln(10)/2.5.",
        args: TWO,
        zero_if_null: &[],
        null_is_error: false,
        output: Output::Float,
        eval: ab_mag_to_flux_sigma,
    },
    RowFunction {
        name: "scisql_nanojanskytoabmag",
        form: "scisql_nanojanskyToAbMag(flux DOUBLE) -> DOUBLE",
        description: "The AB magnitude of a flux in nJy: -2.5 log10(flux) + 31.4; NULL for a \
                      flux that is not positive.",
        args: ONE,
        zero_if_null: &[],
        null_is_error: false,
        output: Output::Float,
        eval: nanojansky_to_ab_mag,
    },
    RowFunction {
        name: "scisql_nanojanskytoabmagsigma",
        form: "scisql_nanojanskyToAbMagSigma(flux DOUBLE, flux_sigma DOUBLE) -> DOUBLE",
        description: "The uncertainty of scisql_nanojanskyToAbMag(flux): 2.5/ln(10) \
                      flux_sigma/flux.",
        args: TWO,
        zero_if_null: &[],
        null_is_error: false,
        output: Output::Float,
        eval: flux_to_ab_mag_sigma,
    },
    RowFunction {
        name: "scisql_abmagtonanojansky",
        form: "scisql_abMagToNanojansky(mag DOUBLE) -> DOUBLE",
        description: "The flux in nJy of an AB magnitude: 10^(-0.4 (mag - 31.4)).",
        args: ONE,
        zero_if_null: &[],
        null_is_error: false,
        output: Output::Float,
        eval: ab_mag_to_nanojansky,
    },
    RowFunction {
        name: "scisql_abmagtonanojanskysigma",
        form: "scisql_abMagToNanojanskySigma(mag DOUBLE, mag_sigma DOUBLE) -> DOUBLE",
        description: "The uncertainty of scisql_abMagToNanojansky(mag): mag_sigma flux \
                      ln(10)/2.5.",
        args: TWO,
        zero_if_null: &[],
        null_is_error: false,
        output: Output::Float,
        eval: ab_mag_to_nanojansky_sigma,
    },
];
