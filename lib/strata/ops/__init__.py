"""Operations: submitting stages to clusters (`strata submit`) and, with issue 8, the nightly refresh."""
