//! Customer lifetime value: the BG/NBD and Gamma-Gamma fits against the published
//! CDNOW results (Fader, Hardie & Lee 2005) and against values computed
//! independently with `lifetimes` (tests/fixtures/cdnow/expected.py), the models'
//! properties, and customer_lifetime_features on the fixture shop (by hand) and
//! the sample (against a plain reference computed here from the orders).

use crate::common::*;
use polars::prelude::*;
use serde_json::Value;
use shopfeat::clv::bgnbd::{self, BgNbd, History};
use shopfeat::clv::gamma_gamma::{self, GammaGamma, Spend};
use shopfeat::clv::hyp2f1::hyp2f1;
use shopfeat::clv::{self, FitStatus};
use shopfeat::features::lifetime;
use std::collections::BTreeMap;

/// (id, history in weeks, mean repeat value) of the 2,357 CDNOW customers.
fn cdnow() -> Vec<(i64, History, f64)> {
    let text = std::fs::read_to_string(fixture("cdnow/cdnow_customers_summary_with_transactions.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Vec<f64> = line.split(',').map(|f| f.trim().parse().unwrap()).collect();
            (v[0] as i64, History { x: v[1], t_x: v[2], t: v[3] }, v[4])
        })
        .collect()
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("cdnow/expected.json")).unwrap()).unwrap()
}

/// `actual` equals `expected` to `digits` significant digits.
fn same_digits(actual: f64, expected: f64, digits: i32, what: &str) {
    let tolerance = 0.5 * 10f64.powi(1 - digits) * expected.abs();
    assert!((actual - expected).abs() <= tolerance, "{what}: {actual} is not {expected} to {digits} digits");
}

fn relative(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!((actual - expected).abs() <= tolerance * expected.abs().max(1e-12), "{what}: {actual} vs {expected}");
}

fn weighted(customers: &[(i64, History, f64)], scale: f64) -> Vec<(History, f64)> {
    customers.iter().map(|(_, h, _)| (History { x: h.x, t_x: h.t_x * scale, t: h.t * scale }, 1.0)).collect()
}

#[test]
fn bgnbd_on_cdnow_matches_the_paper_and_lifetimes() {
    let customers = cdnow();
    assert_eq!(customers.len(), 2357);
    let (model, minimum) = bgnbd::fit(&weighted(&customers, 1.0)).expect("a fit");
    assert!(minimum.converged);
    // The paper (weeks): r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = −9582.4.
    same_digits(model.r, 0.243, 3, "r");
    same_digits(model.alpha, 4.414, 4, "alpha");
    same_digits(model.a, 0.793, 3, "a");
    same_digits(model.b, 2.426, 4, "b");
    let ll = bgnbd::total_log_likelihood(&model, &weighted(&customers, 1.0));
    assert!((ll - -9582.4).abs() < 0.1, "log-likelihood {ll}");
    // The per-customer formula, summed, is the same likelihood.
    let direct: f64 = customers.iter().map(|(_, h, _)| model.log_likelihood(h)).sum();
    relative(direct, ll, 1e-12, "per-customer log-likelihood");

    let reference = expected();
    let theirs = &reference["bgnbd_weeks"];
    let lifetimes = BgNbd { r: theirs["r"].as_f64().unwrap(), alpha: theirs["alpha"].as_f64().unwrap(), a: theirs["a"].as_f64().unwrap(), b: theirs["b"].as_f64().unwrap() };
    for (name, ours, theirs) in [("r", model.r, lifetimes.r), ("alpha", model.alpha, lifetimes.alpha), ("a", model.a, lifetimes.a), ("b", model.b, lifetimes.b)] {
        relative(ours, theirs, 1e-3, name);
    }
    for c in reference["customers"].as_array().unwrap() {
        let h = History { x: c["x"].as_f64().unwrap(), t_x: c["t_x"].as_f64().unwrap(), t: c["T"].as_f64().unwrap() };
        let id = c["id"].as_i64().unwrap();
        // With lifetimes' parameters, our formulas give lifetimes' numbers.
        relative(lifetimes.p_alive(&h), c["p_alive"].as_f64().unwrap(), 1e-9, &format!("customer {id} p_alive"));
        relative(lifetimes.expected_purchases(&h, 10.0).unwrap(), c["expected_purchases_10w"].as_f64().unwrap(), 1e-9, &format!("customer {id} E[10 weeks]"));
        relative(lifetimes.expected_purchases(&h, 39.0).unwrap(), c["expected_purchases_39w"].as_f64().unwrap(), 1e-9, &format!("customer {id} E[39 weeks]"));
        // With ours, nearly so (the optima agree to about 1e-4).
        relative(model.p_alive(&h), c["p_alive"].as_f64().unwrap(), 2e-3, &format!("customer {id} p_alive, our fit"));
        relative(model.expected_purchases(&h, 39.0).unwrap(), c["expected_purchases_39w"].as_f64().unwrap(), 2e-3, &format!("customer {id} E[39 weeks], our fit"));
    }
}

#[test]
fn in_days_alpha_is_seven_times_alpha_in_weeks_and_the_rest_is_the_same() {
    let customers = cdnow();
    let (weeks, _) = bgnbd::fit(&weighted(&customers, 1.0)).unwrap();
    let (days, _) = bgnbd::fit(&weighted(&customers, 7.0)).unwrap();
    relative(days.alpha, 7.0 * weeks.alpha, 1e-4, "alpha");
    relative(days.r, weeks.r, 1e-4, "r");
    relative(days.a, weeks.a, 1e-4, "a");
    relative(days.b, weeks.b, 1e-4, "b");
    // And the same customer expects the same purchases over the same span.
    let h = History { x: 2.0, t_x: 30.43, t: 38.86 };
    let h_days = History { x: 2.0, t_x: 30.43 * 7.0, t: 38.86 * 7.0 };
    relative(days.expected_purchases(&h_days, 70.0).unwrap(), weeks.expected_purchases(&h, 10.0).unwrap(), 1e-3, "E[10 weeks]");
}

#[test]
fn gamma_gamma_on_cdnow_repeat_customers_matches_the_paper_and_lifetimes() {
    let spends: Vec<Spend> = cdnow().into_iter().filter(|(_, h, _)| h.x > 0.0).map(|(_, h, m)| Spend { x: h.x, m }).collect();
    assert_eq!(spends.len(), 946);
    let (model, minimum) = gamma_gamma::fit(&spends).expect("a fit");
    assert!(minimum.converged);
    // The paper: p = 6.25, q = 3.74, γ = 15.44.
    same_digits(model.p, 6.25, 3, "p");
    same_digits(model.q, 3.74, 3, "q");
    same_digits(model.gamma, 15.44, 3, "gamma");
    let reference = expected();
    let theirs = &reference["gamma_gamma"];
    let lifetimes = GammaGamma { p: theirs["p"].as_f64().unwrap(), q: theirs["q"].as_f64().unwrap(), gamma: theirs["v"].as_f64().unwrap() };
    relative(model.p, lifetimes.p, 1e-3, "p");
    relative(model.q, lifetimes.q, 1e-3, "q");
    relative(model.gamma, lifetimes.gamma, 1e-3, "gamma");
    for c in reference["customers"].as_array().unwrap() {
        let Some(spend) = c["expected_spend"].as_f64() else { continue };
        let mean = lifetimes.conditional_mean(c["x"].as_f64().unwrap(), c["m"].as_f64().unwrap()).unwrap();
        relative(mean, spend, 1e-9, &format!("customer {} expected spend", c["id"]));
    }
}

#[test]
fn hyp2f1_matches_closed_forms_and_refuses_z_of_one() {
    for z in [0.0, 0.1, 0.5, 0.9, 0.99] {
        let log_form = if z == 0.0 { 1.0 } else { -(1.0 - z as f64).ln() / z };
        relative(hyp2f1(1.0, 1.0, 2.0, z).unwrap(), log_form, 1e-12, &format!("2F1(1,1;2;{z})"));
        relative(hyp2f1(0.7, 2.3, 2.3, z).unwrap(), (1.0 - z).powf(-0.7), 1e-12, &format!("2F1(a,b;b;{z})"));
    }
    assert_eq!(hyp2f1(1.0, 1.0, 2.0, 1.0), None);
    assert_eq!(hyp2f1(1.0, 1.0, -2.0, 0.5), None);
}

#[test]
fn p_alive_is_one_without_repeats_always_in_0_1_and_expected_purchases_grow_with_the_horizon() {
    let model = BgNbd { r: 0.243, alpha: 4.414 * 7.0, a: 0.793, b: 2.426 };
    let mut checked = 0;
    for x in [0.0, 1.0, 2.0, 5.0, 20.0, 80.0] {
        for t in [0.0, 1.0, 30.0, 200.0, 700.0] {
            for share in [0.0, 0.3, 0.9, 1.0] {
                let t_x = if x == 0.0 { 0.0 } else { t * share };
                let h = History { x, t_x, t };
                let p = model.p_alive(&h);
                assert!((0.0..=1.0).contains(&p), "{h:?}: p_alive {p}");
                if x == 0.0 {
                    assert_eq!(p, 1.0, "{h:?}");
                }
                let mut previous = 0.0;
                for horizon in [1.0, 7.0, 30.0, 90.0, 365.0] {
                    let e = model.expected_purchases(&h, horizon).unwrap();
                    assert!(e.is_finite() && e >= previous, "{h:?}: E[{horizon}] = {e} after {previous}");
                    previous = e;
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 120);
    // A longer silence since the last purchase: less likely alive.
    let alive = |t: f64| model.p_alive(&History { x: 3.0, t_x: 20.0, t });
    assert!(alive(20.0) > alive(60.0) && alive(60.0) > alive(300.0));
}

#[test]
fn too_few_customers_get_a_status_and_no_predictions() {
    let few: Vec<(History, f64)> = (0..10).map(|i| (History { x: f64::from(i % 3), t_x: f64::from(i), t: 40.0 }, 1.0)).collect();
    let spends = vec![Spend { x: 1.0, m: 10.0 }; 3];
    let fit = clv::fit(&few, &spends);
    assert_eq!(fit.status, FitStatus::TooFewCustomers);
    assert_eq!((fit.customers, fit.repeat_customers), (10, 3));
    assert!(fit.models().is_none() && fit.bgnbd.is_none());
}

#[test]
fn the_table_by_hand_on_the_fixture_shop() {
    // At 2025-03-01: customer 900 bought on 02-20 (its test order, the order
    // cancelled by T and the one after T do not count); 901 on 01-10 and 02-26 (a
    // repeat day of 25.00, cancelled only after T); 903 on 02-20; 902 never (904
    // is created after T: no row).
    let t = features_fixture("2025-03-01T00:00:00Z", lifetime::build);
    assert_eq!(t.ids("customer_id"), vec![900, 901, 902, 903]);
    assert_eq!((t.int("customer_id", 900, "frequency"), t.int("customer_id", 900, "recency_days"), t.int("customer_id", 900, "age_days")), (Some(0), Some(0), Some(9)));
    assert_eq!(t.float("customer_id", 900, "monetary_value"), None);
    assert_eq!((t.int("customer_id", 901, "frequency"), t.int("customer_id", 901, "recency_days"), t.int("customer_id", 901, "age_days")), (Some(1), Some(47), Some(50)));
    close(t.float("customer_id", 901, "monetary_value"), 25.0);
    assert_eq!(t.int("customer_id", 903, "frequency"), Some(0));
    assert_eq!((t.int("customer_id", 902, "frequency"), t.int("customer_id", 902, "age_days")), (None, None));
    // Three buyers cannot be fitted: a status, and no prediction (never NaN).
    for id in t.ids("customer_id") {
        assert_eq!(t.str("customer_id", id, "model_fit").as_deref(), Some("too few customers"));
        assert_eq!(t.float("customer_id", id, "p_alive"), None);
        assert_eq!(t.float("customer_id", id, "expected_value_90d"), None);
    }

    // At 2025-03-05: 900's order of 03-02 is a repeat day; 901's second order was
    // cancelled on 03-03.
    let t = features_fixture("2025-03-05T00:00:00Z", lifetime::build);
    assert_eq!((t.int("customer_id", 900, "frequency"), t.int("customer_id", 900, "recency_days"), t.int("customer_id", 900, "age_days")), (Some(1), Some(10), Some(13)));
    close(t.float("customer_id", 900, "monetary_value"), 20.0);
    assert_eq!((t.int("customer_id", 901, "frequency"), t.int("customer_id", 901, "age_days")), (Some(0), Some(54)));
}

/// The sample: every history equals a plain per-order reference built here, the
/// shop's fit is ok, and every prediction is the models' at the fitted parameters.
#[test]
fn the_table_on_the_sample_matches_a_plain_reference_and_the_fit() {
    let landed = land(&[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")]);
    let as_of = ts("2025-11-30T23:59:59Z");
    let raw = shopfeat::normalize::RawTables::open(&landed.root, "test").unwrap();
    let main = shopfeat::normalize::normalize(&raw, Some(as_of)).unwrap();
    let orders = main.orders.clone().collect().unwrap();
    let inputs = shopfeat::features::Inputs::new(main, "test", as_of, Default::default()).unwrap();
    let fit = inputs.lifetime.as_ref().expect("fitted once with the inputs").fit.clone();
    assert_eq!(fit.status, FitStatus::Ok, "{fit:?}");
    let table = Table(lifetime::build(&inputs).unwrap().collect().unwrap());

    // The reference: valid orders (not test, created by T, not cancelled by T) per
    // customer and UTC day.
    let day = |us: i64| us.div_euclid(86_400_000_000);
    let mut days: BTreeMap<i64, BTreeMap<i64, f64>> = BTreeMap::new();
    let micros = |c: &str| orders.column(c).unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().clone();
    let (created, cancelled) = (micros("created_at"), micros("cancelled_at"));
    let customers = orders.column("customer_id").unwrap().i64().unwrap();
    let tests = orders.column("test").unwrap().bool().unwrap();
    let totals = orders.column("total_price").unwrap().f64().unwrap();
    for i in 0..orders.height() {
        let valid = !tests.get(i).unwrap() && created.get(i).unwrap() <= as_of && cancelled.get(i).is_none_or(|c| c > as_of);
        if let (true, Some(customer)) = (valid, customers.get(i)) {
            *days.entry(customer).or_default().entry(day(created.get(i).unwrap())).or_default() += totals.get(i).unwrap();
        }
    }
    let models = fit.models().unwrap();
    let mut with_history = 0;
    for id in table.ids("customer_id") {
        let Some(per_day) = days.get(&id) else {
            assert_eq!(table.int("customer_id", id, "frequency"), None);
            continue;
        };
        with_history += 1;
        let (first, last) = (*per_day.keys().next().unwrap(), *per_day.keys().last().unwrap());
        let x = per_day.len() as i64 - 1;
        assert_eq!(table.int("customer_id", id, "frequency"), Some(x), "customer {id}");
        assert_eq!(table.int("customer_id", id, "recency_days"), Some(last - first));
        assert_eq!(table.int("customer_id", id, "age_days"), Some(day(as_of) - first));
        let repeat_mean = (x > 0).then(|| per_day.values().skip(1).sum::<f64>() / x as f64);
        match repeat_mean {
            Some(m) => close(table.float("customer_id", id, "monetary_value"), m),
            None => assert_eq!(table.float("customer_id", id, "monetary_value"), None),
        }
        let h = History { x: x as f64, t_x: (last - first) as f64, t: (day(as_of) - first) as f64 };
        let expected = clv::predict(models, &h, repeat_mean.unwrap_or(0.0)).unwrap();
        close(table.float("customer_id", id, "p_alive"), expected.p_alive);
        close(table.float("customer_id", id, "expected_purchases_30d"), expected.purchases_30d);
        close(table.float("customer_id", id, "expected_purchases_90d"), expected.purchases_90d);
        close(table.float("customer_id", id, "expected_value_90d"), expected.value_90d);
        assert!(expected.purchases_90d >= expected.purchases_30d);
    }
    assert!(with_history >= clv::MIN_CUSTOMERS, "{with_history} customers with a history");
}

/// The fit is deterministic: the likelihood is summed in fixed chunks (here more
/// than one) added in order, so two fits give the same bits.
#[test]
fn fitting_twice_gives_the_same_parameters_bit_for_bit() {
    let customers: Vec<(History, f64)> = cdnow()
        .iter()
        .flat_map(|(_, h, _)| (0..3).map(move |k| (History { x: h.x, t_x: h.t_x, t: h.t + 0.01 * f64::from(k) }, 1.0)))
        .collect();
    assert!(customers.len() > 4096, "more than one chunk");
    let (first, _) = bgnbd::fit(&customers).unwrap();
    let (second, _) = bgnbd::fit(&customers).unwrap();
    assert_eq!([first.r, first.alpha, first.a, first.b].map(f64::to_bits), [second.r, second.alpha, second.a, second.b].map(f64::to_bits));
}
