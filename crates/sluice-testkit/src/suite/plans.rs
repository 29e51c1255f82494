//! Tenant plan cases: what every [`TenantPlans`](sluice_core::ports::TenantPlans) adapter keeps
//! (the embedded store, API Gateway usage plans on moto).

use crate::{PlansFactory, fresh_tenant};
use sluice_core::ports::{PlanError, TenantLimits};

fn limits(rate: u32, burst: u32, quota: u64) -> TenantLimits {
    TenantLimits {
        rate_per_sec: rate,
        burst,
        quota_per_day: quota,
    }
}

/// A plan set is read back exactly, changed in place, listed by tenant, and cleared.
pub async fn plans_set_get_list_and_clear<F: PlansFactory>(f: &F) {
    let plans = f.plans().await;
    let (a, b) = (fresh_tenant(), fresh_tenant());
    plans.enroll(&a).await.unwrap();
    assert_eq!(
        plans.get(&a).await.unwrap(),
        None,
        "enrolled tenants start on the default plan"
    );
    plans.set(&a, limits(5, 10, 1000)).await.unwrap();
    plans.set(&b, limits(1, 1, 1)).await.unwrap();
    assert_eq!(plans.get(&a).await.unwrap(), Some(limits(5, 10, 1000)));
    plans.set(&a, limits(7, 70, 70_000)).await.unwrap();
    assert_eq!(plans.get(&a).await.unwrap(), Some(limits(7, 70, 70_000)));
    let listed: Vec<_> = plans
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|(t, _)| *t == a || *t == b)
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&(a.clone(), limits(7, 70, 70_000))), "{listed:?}");
    assert!(listed.contains(&(b.clone(), limits(1, 1, 1))), "{listed:?}");
    assert!(plans.clear(&a).await.unwrap());
    assert!(!plans.clear(&a).await.unwrap(), "clearing twice");
    assert_eq!(plans.get(&a).await.unwrap(), None);
    assert_eq!(
        plans.get(&b).await.unwrap(),
        Some(limits(1, 1, 1)),
        "b's plan is its own"
    );
}

/// Enrolling twice changes nothing, and enrolling a tenant that has a plan keeps the plan.
pub async fn plans_enroll_is_idempotent_and_keeps_an_own_plan<F: PlansFactory>(f: &F) {
    let plans = f.plans().await;
    let t = fresh_tenant();
    plans.enroll(&t).await.unwrap();
    plans.enroll(&t).await.unwrap();
    assert_eq!(plans.get(&t).await.unwrap(), None);
    plans.set(&t, limits(2, 4, 8)).await.unwrap();
    plans.enroll(&t).await.unwrap();
    assert_eq!(plans.get(&t).await.unwrap(), Some(limits(2, 4, 8)));
}

/// A plan always bounds (D-1, D-2): zero rate, burst or quota, or a burst below the rate, is
/// refused and stores nothing.
pub async fn plans_refuse_limits_that_do_not_bound<F: PlansFactory>(f: &F) {
    let plans = f.plans().await;
    let t = fresh_tenant();
    for bad in [limits(0, 1, 1), limits(1, 0, 1), limits(1, 1, 0), limits(10, 5, 100)] {
        let r = plans.set(&t, bad).await;
        assert!(matches!(r, Err(PlanError::Invalid(_))), "{bad:?}: {r:?}");
    }
    assert_eq!(plans.get(&t).await.unwrap(), None);
}
