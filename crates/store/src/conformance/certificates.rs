//! Conformance cases for certificates, principals and policy attachments; instantiated by
//! [`certificates_conformance_tests!`](crate::certificates_conformance_tests).

use std::slice;
use std::sync::Arc;

use futures_util::TryStreamExt;

use super::fixtures::{
    add_thing, all_pages, ca_record as ca, cert_record, create_group, create_policy, facts,
    group_arn, hex_id, mapped, new_policy, ok, open_handles, race, register, status_of,
};
use super::{
    all_tags, assert_already_exists, assert_tags, fresh_scope, scope, tag, unique, Database,
    NO_LIMIT,
};
use crate::{
    CaCertificateUpdate, CertificateInUse, CertificateRecord, CertificateRefusal, IssuingCaRecord,
    PolicyRefusal, PolicyTarget, PrincipalRefusal, RegistrationConfigChange,
    RegistrationConfigRecord, Scope, Store, StoreError, ThingRefusal,
};

fn cert(scope: &Scope, id: &str, created_at_ms: i64, ca: Option<&str>) -> CertificateRecord {
    cert_record(scope, id, "INACTIVE", ca, created_at_ms)
}

async fn policy(store: &dyn Store, scope: &Scope, name: &str) {
    create_policy(store, scope, &new_policy(scope, name, "{}")).await;
}

/// Creates `thing` with the certificate `id` attached to it.
async fn thing_holding(store: &dyn Store, scope: &Scope, thing: &str, id: &str) {
    add_thing(store, scope, thing).await;
    let attached = ok(store.attach_thing_principal(scope, thing, id, false, 1)).await;
    attached.expect("attached");
}

fn cert_target(record: &CertificateRecord) -> PolicyTarget {
    PolicyTarget::Certificate {
        id: record.id.clone(),
        arn: record.arn.clone(),
    }
}

async fn ids(store: &dyn Store, scope: &Scope, ca: Option<&str>) -> Vec<String> {
    mapped(
        store.list_certificates(scope, ca, None, false, NO_LIMIT),
        |c| c.id,
    )
    .await
}

pub async fn certificate_crud_and_facts_round_trip(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let mut record = cert(&s, &hex_id(), 5_000, None);
    record.facts = facts(b"device");
    register(&*store, &s, &record).await;
    assert_eq!(
        ok(store.get_certificate(&s, &record.id)).await,
        Some(record.clone())
    );
    assert_eq!(ok(store.get_certificate(&s, &hex_id())).await, None);
    assert_eq!(ids(&*store, &s, None).await, vec![record.id.clone()]);

    let updated = ok(store.update_certificate_status(&s, &record.id, "ACTIVE", "gen-2", 6_000))
        .await
        .unwrap();
    assert_eq!(updated.status, "ACTIVE");
    assert_eq!(updated.generation_id, "gen-2");
    assert_eq!(updated.customer_version, 2);
    assert_eq!(updated.updated_at_ms, 6_000);
    assert_eq!(updated.created_at_ms, 5_000);
    assert_eq!(updated.facts, record.facts);
    assert_eq!(
        ok(store.get_certificate(&s, &record.id)).await,
        Some(updated)
    );
}

pub async fn certificate_status_rules(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let record = cert(&s, &hex_id(), 1, None);
    register(&*store, &s, &record).await;
    // The current status again changes nothing.
    let same = ok(store.update_certificate_status(&s, &record.id, "INACTIVE", "other-gen", 9))
        .await
        .unwrap();
    assert_eq!(same, record);
    ok(store.update_certificate_status(&s, &record.id, "REVOKED", "g", 2))
        .await
        .unwrap();
    for to in ["ACTIVE", "INACTIVE"] {
        assert_eq!(
            ok(store.update_certificate_status(&s, &record.id, to, "g", 3)).await,
            Err(CertificateRefusal::State {
                status: "REVOKED".into()
            })
        );
    }
    assert_eq!(
        ok(store.update_certificate_status(&s, &hex_id(), "ACTIVE", "g", 3)).await,
        Err(CertificateRefusal::NotFound)
    );
    assert_eq!(status_of(&*store, &s, &record.id).await, "REVOKED");
}

pub async fn certificate_delete_rules(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let mut record = cert(&s, &hex_id(), 1, None);
    record.status = "ACTIVE".into();
    register(&*store, &s, &record).await;
    assert_eq!(
        ok(store.delete_certificate(&s, &record.id, true)).await,
        Err(CertificateRefusal::State {
            status: "ACTIVE".into()
        })
    );
    ok(store.update_certificate_status(&s, &record.id, "INACTIVE", "g", 2))
        .await
        .unwrap();
    thing_holding(&*store, &s, "t", &record.id).await;
    assert_eq!(
        ok(store.delete_certificate(&s, &record.id, true)).await,
        Err(CertificateRefusal::AttachedToThings)
    );
    ok(store.detach_thing_principal(&s, "t", &record.id))
        .await
        .unwrap();
    policy(&*store, &s, "p").await;
    ok(store.attach_policy(&s, "p", &cert_target(&record), 10, 1))
        .await
        .unwrap();
    assert_eq!(
        ok(store.delete_certificate(&s, &record.id, false)).await,
        Err(CertificateRefusal::AttachedToPolicies)
    );
    assert!(ok(store.get_certificate(&s, &record.id)).await.is_some());
    ok(store.delete_certificate(&s, &record.id, true))
        .await
        .unwrap();
    assert_eq!(ok(store.get_certificate(&s, &record.id)).await, None);
    assert_eq!(
        ok(store.list_targets_for_policy(&s, "p", None, NO_LIMIT)).await,
        Some(vec![])
    );
    assert_eq!(
        ok(store.delete_certificate(&s, &record.id, true)).await,
        Err(CertificateRefusal::NotFound)
    );
    ok(store.delete_policy(&s, "p")).await.unwrap();
}

pub async fn certificate_duplicates_and_refusals_write_nothing(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let record = cert(&s, &hex_id(), 1, None);
    register(&*store, &s, &record).await;
    let mut again = record.clone();
    again.status = "ACTIVE".into();
    assert_already_exists(store.register_certificate(&s, &again).await);
    assert_eq!(
        ok(store.get_certificate(&s, &record.id)).await,
        Some(record.clone())
    );

    // Under a CA that does not exist.
    let orphan = cert(&s, &hex_id(), 2, Some(&hex_id()));
    assert_eq!(
        ok(store.register_certificate(&s, &orphan)).await,
        Err(CertificateRefusal::CaNotFound)
    );
    assert_eq!(ids(&*store, &s, None).await, vec![record.id.clone()]);

    // A duplicate CA writes neither the CA nor its tags.
    let authority = ca(&s, &hex_id(), b"subject", 1);
    ok(store.register_ca_certificate(&s, &authority, &[tag("a", "1")], 10))
        .await
        .unwrap();
    assert_already_exists(
        store
            .register_ca_certificate(&s, &authority, &[tag("b", "2")], 10)
            .await,
    );
    assert_tags(&*store, &s, &authority.arn, &[("a", "1")]).await;
}

pub async fn certificate_listing_pages_both_directions(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let authority = ca(&s, &hex_id(), b"ca", 1);
    ok(store.register_ca_certificate(&s, &authority, &[], 10))
        .await
        .unwrap();
    let mut all = Vec::new();
    for i in 0..7i64 {
        // Ties in creation time are ordered by id.
        let under = (i % 2 == 0).then_some(authority.id.as_str());
        let r = cert(&s, &hex_id(), 100 + i / 2, under);
        register(&*store, &s, &r).await;
        all.push(r);
    }
    all.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
    for descending in [false, true] {
        for ca_filter in [None, Some(authority.id.as_str())] {
            let mut expected: Vec<String> = all
                .iter()
                .filter(|c| ca_filter.is_none() || c.ca_certificate_id.as_deref() == ca_filter)
                .map(|c| c.id.clone())
                .collect();
            if descending {
                expected.reverse();
            }
            let key = |c: &CertificateRecord| (c.created_at_ms, c.id.clone());
            let listed = all_pages(3, key, async |after| {
                let after = after.as_ref();
                store
                    .list_certificates(&s, ca_filter, after, descending, 3)
                    .await
            })
            .await;
            let seen: Vec<String> = listed.into_iter().map(|c| c.id).collect();
            assert_eq!(seen, expected, "descending={descending} ca={ca_filter:?}");
        }
    }

    // CA listing with a template filter.
    let mut templated = ca(&s, &hex_id(), b"other", 50);
    templated.registration_config.template_name = Some("tmpl".into());
    ok(store.register_ca_certificate(&s, &templated, &[], 10))
        .await
        .unwrap();
    let listed = ok(store.list_ca_certificates(&s, None, None, false, NO_LIMIT)).await;
    assert_eq!(
        listed.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![authority.id.clone(), templated.id.clone()]
    );
    let listed = ok(store.list_ca_certificates(&s, Some("tmpl"), None, false, NO_LIMIT)).await;
    assert_eq!(listed, vec![templated.clone()]);
    let after = (authority.created_at_ms, authority.id.clone());
    let listed = ok(store.list_ca_certificates(&s, None, Some(&after), false, NO_LIMIT)).await;
    assert_eq!(listed, vec![templated]);
}

/// An audit's read: the certificates in use (ACTIVE, PENDING_TRANSFER) in creation order,
/// pages of at most the size asked, nothing of another scope.
pub async fn certificates_in_use_in_creation_order(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let other = fresh_scope();
    register(
        &*store,
        &other,
        &CertificateRecord {
            status: "ACTIVE".into(),
            ..cert(&other, &hex_id(), 1, None)
        },
    )
    .await;
    let statuses = [
        "ACTIVE",
        "INACTIVE",
        "REVOKED",
        "PENDING_TRANSFER",
        "PENDING_ACTIVATION",
        "ACTIVE",
        "REGISTER_INACTIVE",
        "ACTIVE",
        "ACTIVE",
    ];
    let mut all = Vec::new();
    for (i, status) in statuses.iter().enumerate() {
        let r = CertificateRecord {
            status: (*status).into(),
            ..cert(&s, &hex_id(), 100 + i as i64 / 2, None)
        };
        register(&*store, &s, &r).await;
        all.push(r);
    }
    all.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
    let expected = |all: &[CertificateRecord]| -> Vec<CertificateInUse> {
        all.iter()
            .filter(|c| crate::status_in_use(&c.status))
            .cloned()
            .map(CertificateInUse::from)
            .collect()
    };
    // The caller's clock long after the certificates were created, and at their creation.
    for now in [100, 10_000_000] {
        for page in [1, 2, 100] {
            let pages: Vec<Vec<CertificateInUse>> =
                ok(store.certificates_in_use(&s, page, now).try_collect()).await;
            assert!(pages.iter().all(|p| p.len() <= page), "page size {page}");
            assert_eq!(
                pages.concat(),
                expected(&all),
                "page size {page}, now {now}"
            );
        }
    }

    // A certificate leaves the scan once it is no longer in use.
    let gone = all.iter().position(|c| c.status == "ACTIVE").unwrap();
    ok(store.update_certificate_status(&s, &all[gone].id, "INACTIVE", "gen-x", 500))
        .await
        .unwrap();
    all[gone].status = "INACTIVE".into();
    for now in [100, 10_000_000] {
        let pages: Vec<Vec<CertificateInUse>> =
            ok(store.certificates_in_use(&s, 3, now).try_collect()).await;
        assert_eq!(pages.concat(), expected(&all), "now {now}");
    }

    let empty: Vec<Vec<CertificateInUse>> = ok(store
        .certificates_in_use(&fresh_scope(), 10, 10_000_000)
        .try_collect())
    .await;
    assert!(empty.concat().is_empty());
}

pub async fn ca_certificate_crud_tags_and_subject_limit(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let subject = unique("subject-").into_bytes();
    let first = ca(&s, &hex_id(), &subject, 1);
    ok(store.register_ca_certificate(&s, &first, &[tag("k", "v")], 2))
        .await
        .unwrap();
    assert_eq!(
        ok(store.get_ca_certificate(&s, &first.id)).await,
        Some(first.clone())
    );
    let second = ca(&s, &hex_id(), &subject, 2);
    ok(store.register_ca_certificate(&s, &second, &[], 2))
        .await
        .unwrap();
    let third = ca(&s, &hex_id(), &subject, 3);
    assert_eq!(
        ok(store.register_ca_certificate(&s, &third, &[tag("x", "y")], 2)).await,
        Err(CertificateRefusal::TooManyWithSubject { limit: 2 })
    );
    assert_eq!(ok(store.get_ca_certificate(&s, &third.id)).await, None);
    assert!(all_tags(&*store, &s, &third.arn).await.is_empty());
    let found = ok(store.find_ca_certificates_by_subject(&s, &subject)).await;
    assert_eq!(found, vec![first.clone(), second.clone()]);
    assert!(ok(store.find_ca_certificates_by_subject(&s, b"nobody"))
        .await
        .is_empty());

    let config = RegistrationConfigRecord {
        role_arn: Some("arn:aws:iam::1:role/r".into()),
        template_body: Some("{}".into()),
        template_name: None,
    };
    let updated = ok(store.update_ca_certificate(
        &s,
        &first.id,
        &CaCertificateUpdate {
            status: Some("INACTIVE".into()),
            auto_registration_status: Some("ENABLE".into()),
            registration_config: RegistrationConfigChange::Replace(config.clone()),
            generation_id: "g2".into(),
            updated_at_ms: 10,
        },
    ))
    .await
    .unwrap();
    assert_eq!(
        (
            updated.status.as_str(),
            updated.auto_registration_status.as_str()
        ),
        ("INACTIVE", "ENABLE")
    );
    assert_eq!(updated.registration_config, config);
    assert_eq!((updated.customer_version, updated.updated_at_ms), (2, 10));
    let kept = ok(store.update_ca_certificate(
        &s,
        &first.id,
        &CaCertificateUpdate {
            status: None,
            auto_registration_status: None,
            registration_config: RegistrationConfigChange::Keep,
            generation_id: "g3".into(),
            updated_at_ms: 11,
        },
    ))
    .await
    .unwrap();
    assert_eq!(kept.registration_config, config);
    assert_eq!(kept.status, "INACTIVE");
    let removed = ok(store.update_ca_certificate(
        &s,
        &first.id,
        &CaCertificateUpdate {
            status: None,
            auto_registration_status: None,
            registration_config: RegistrationConfigChange::Remove,
            generation_id: "g4".into(),
            updated_at_ms: 12,
        },
    ))
    .await
    .unwrap();
    assert_eq!(
        removed.registration_config,
        RegistrationConfigRecord::default()
    );
    assert_eq!(
        ok(store.update_ca_certificate(
            &s,
            &hex_id(),
            &CaCertificateUpdate {
                status: None,
                auto_registration_status: None,
                registration_config: RegistrationConfigChange::Keep,
                generation_id: "g".into(),
                updated_at_ms: 1,
            },
        ))
        .await,
        None
    );

    // Deletion: only INACTIVE; removes the tags; device certificates stay.
    let device = cert(&s, &hex_id(), 5, Some(&second.id));
    register(&*store, &s, &device).await;
    assert_eq!(
        ok(store.delete_ca_certificate(&s, &second.id)).await,
        Err(CertificateRefusal::State {
            status: "ACTIVE".into()
        })
    );
    ok(store.delete_ca_certificate(&s, &first.id))
        .await
        .unwrap();
    assert!(all_tags(&*store, &s, &first.arn).await.is_empty());
    assert_eq!(ok(store.get_ca_certificate(&s, &first.id)).await, None);
    assert_eq!(
        ok(store.delete_ca_certificate(&s, &first.id)).await,
        Err(CertificateRefusal::NotFound)
    );
    // The subject has room again.
    ok(store.register_ca_certificate(&s, &third, &[], 2))
        .await
        .unwrap();
    assert!(ok(store.get_certificate(&s, &device.id)).await.is_some());
}

pub async fn certificates_isolated_by_account_and_region(store: Arc<dyn Store>) {
    let a = fresh_scope();
    let other_account = fresh_scope();
    let other_region = scope(&a.account_id, "eu-west-1");
    let record = cert(&a, &hex_id(), 1, None);
    register(&*store, &a, &record).await;
    let authority = ca(&a, &hex_id(), b"iso", 1);
    ok(store.register_ca_certificate(&a, &authority, &[], 10))
        .await
        .unwrap();
    thing_holding(&*store, &a, "t", &record.id).await;
    for other in [&other_account, &other_region] {
        assert_eq!(ok(store.get_certificate(other, &record.id)).await, None);
        assert_eq!(
            ok(store.get_ca_certificate(other, &authority.id)).await,
            None
        );
        assert!(ids(&*store, other, None).await.is_empty());
        assert!(
            ok(store.list_ca_certificates(other, None, None, false, NO_LIMIT))
                .await
                .is_empty()
        );
        assert!(ok(store.find_ca_certificates_by_subject(other, b"iso"))
            .await
            .is_empty());
        assert_eq!(
            ok(store.delete_certificate(other, &record.id, true)).await,
            Err(CertificateRefusal::NotFound)
        );
        assert!(
            ok(store.list_principal_things(other, &record.id, None, NO_LIMIT))
                .await
                .is_empty()
        );
        // The same id can be registered there on its own.
        register(&*store, other, &cert(other, &record.id, 1, None)).await;
    }
    assert_eq!(
        ok(store.get_certificate(&a, &record.id)).await,
        Some(record)
    );
}

pub async fn registration_code_and_issuing_ca_first_one_stays(store: Arc<dyn Store>) {
    let s = fresh_scope();
    assert_eq!(ok(store.get_registration_code(&s)).await, None);
    assert_eq!(ok(store.registration_code(&s, "code-1")).await, "code-1");
    assert_eq!(ok(store.registration_code(&s, "code-2")).await, "code-1");
    assert_eq!(
        ok(store.get_registration_code(&s)).await,
        Some("code-1".into())
    );
    assert_eq!(ok(store.get_registration_code(&fresh_scope())).await, None);

    assert_eq!(ok(store.get_issuing_ca(&s)).await, None);
    let first = IssuingCaRecord {
        id: "ca-1".into(),
        certificate_pem: "pem-1".into(),
        private_key_pem: "key-1".into(),
        created_at_ms: 1,
    };
    let second = IssuingCaRecord {
        id: "ca-2".into(),
        ..first.clone()
    };
    assert_eq!(ok(store.put_issuing_ca(&s, &first)).await, first);
    assert_eq!(ok(store.put_issuing_ca(&s, &second)).await, first);
    assert_eq!(ok(store.get_issuing_ca(&s)).await, Some(first));
    assert_eq!(ok(store.get_issuing_ca(&fresh_scope())).await, None);
}

pub async fn thing_principal_rules(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let c1 = cert(&s, &hex_id(), 1, None);
    let c2 = cert(&s, &hex_id(), 2, None);
    register(&*store, &s, &c1).await;
    register(&*store, &s, &c2).await;
    for t in ["t1", "t2", "t3"] {
        add_thing(&*store, &s, t).await;
    }
    // Attachments in turn, each with its outcome.
    let missing = hex_id();
    let exclusive_to_t1 = Err(PrincipalRefusal::Exclusive { thing: "t1".into() });
    for (thing, id, exclusive, outcome) in [
        ("nope", &c1.id, false, Err(PrincipalRefusal::ThingNotFound)),
        (
            "t1",
            &missing,
            false,
            Err(PrincipalRefusal::CertificateNotFound),
        ),
        ("t1", &c1.id, true, Ok(())),
        ("t1", &c1.id, true, Ok(())),
        ("t2", &c1.id, false, exclusive_to_t1.clone()),
        ("t1", &c1.id, false, Ok(())),
        ("t2", &c1.id, false, Ok(())),
        ("t3", &c1.id, true, exclusive_to_t1),
        ("t1", &c2.id, false, Ok(())),
    ] {
        let attached = ok(store.attach_thing_principal(&s, thing, id, exclusive, 1)).await;
        assert_eq!(attached, outcome, "{id} to {thing}, exclusive {exclusive}");
    }

    let mut both = vec![c1.id.clone(), c2.id.clone()];
    both.sort();
    assert_eq!(
        ok(store.list_thing_principals(&s, "t1", None, NO_LIMIT)).await,
        Some(both.clone())
    );
    assert_eq!(
        ok(store.list_thing_principals(&s, "t1", Some(&both[0]), 1)).await,
        Some(vec![both[1].clone()])
    );
    assert_eq!(
        ok(store.list_thing_principals(&s, "nope", None, 5)).await,
        None
    );
    assert_eq!(
        ok(store.list_principal_things(&s, &c1.id, None, NO_LIMIT)).await,
        vec!["t1".to_owned(), "t2".to_owned()]
    );
    assert_eq!(
        ok(store.list_principal_things(&s, &c1.id, Some("t1"), NO_LIMIT)).await,
        vec!["t2".to_owned()]
    );

    // DeleteThing refuses while principals are attached, and writes nothing.
    assert_eq!(
        ok(store.delete_thing(&s, "t1", None)).await,
        Err(ThingRefusal::HasPrincipals)
    );
    assert!(ok(store.get_thing(&s, "t1")).await.is_some());
    // Detachments in turn, each with its outcome.
    for (thing, id, outcome) in [
        ("nope", &c1.id, Err(PrincipalRefusal::ThingNotFound)),
        ("t1", &c1.id, Ok(true)),
        ("t1", &c1.id, Ok(false)),
        ("t1", &c2.id, Ok(true)),
    ] {
        let detached = ok(store.detach_thing_principal(&s, thing, id)).await;
        assert_eq!(detached, outcome, "{id} from {thing}");
    }
    assert_eq!(ok(store.delete_thing(&s, "t1", None)).await, Ok(true));
    assert_eq!(
        ok(store.list_principal_things(&s, &c1.id, None, NO_LIMIT)).await,
        vec!["t2".to_owned()]
    );
}

pub async fn policy_attachment_rules(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let c = cert(&s, &hex_id(), 1, None);
    register(&*store, &s, &c).await;
    create_group(&*store, &s, "root", None).await;
    create_group(&*store, &s, "child", Some("root")).await;
    for p in ["a", "b", "c", "d"] {
        policy(&*store, &s, p).await;
    }
    let root = PolicyTarget::ThingGroup {
        name: "root".into(),
        arn: group_arn(&s, "root"),
    };
    let child = PolicyTarget::ThingGroup {
        name: "child".into(),
        arn: group_arn(&s, "child"),
    };
    assert_eq!(
        ok(store.attach_policy(&s, "nope", &cert_target(&c), 10, 1)).await,
        Err(PrincipalRefusal::PolicyNotFound)
    );
    let missing_cert = cert(&s, &hex_id(), 1, None);
    assert_eq!(
        ok(store.attach_policy(&s, "a", &cert_target(&missing_cert), 10, 1)).await,
        Err(PrincipalRefusal::CertificateNotFound)
    );
    let missing_group = PolicyTarget::ThingGroup {
        name: "nope".into(),
        arn: group_arn(&s, "nope"),
    };
    assert_eq!(
        ok(store.attach_policy(&s, "a", &missing_group, 10, 1)).await,
        Err(PrincipalRefusal::GroupNotFound)
    );
    ok(store.attach_policy(&s, "a", &cert_target(&c), 2, 1))
        .await
        .unwrap();
    ok(store.attach_policy(&s, "b", &cert_target(&c), 2, 1))
        .await
        .unwrap();
    // Re-attaching one it has is not another.
    ok(store.attach_policy(&s, "b", &cert_target(&c), 2, 1))
        .await
        .unwrap();
    assert_eq!(
        ok(store.attach_policy(&s, "c", &cert_target(&c), 2, 1)).await,
        Err(PrincipalRefusal::TooManyPolicies { limit: 2 })
    );
    ok(store.attach_policy(&s, "c", &root, 10, 1))
        .await
        .unwrap();
    ok(store.attach_policy(&s, "a", &root, 10, 1))
        .await
        .unwrap();
    ok(store.attach_policy(&s, "d", &child, 10, 1))
        .await
        .unwrap();

    let names = |v: Vec<crate::PolicyRef>| v.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        names(
            ok(store.list_attached_policies(&s, std::slice::from_ref(&c.arn), None, NO_LIMIT))
                .await
        ),
        vec!["a", "b"]
    );
    let both = [child.arn().to_owned(), root.arn().to_owned()];
    assert_eq!(
        names(ok(store.list_attached_policies(&s, &both, None, NO_LIMIT)).await),
        vec!["a", "c", "d"]
    );
    assert_eq!(
        names(ok(store.list_attached_policies(&s, &both, Some("a"), 1)).await),
        vec!["c"]
    );
    let listed = ok(store.list_attached_policies(&s, &both, None, 1)).await;
    assert_eq!(
        listed[0].arn,
        format!("arn:aws:iot:{}:{}:policy/a", s.region, s.account_id)
    );
    assert!(ok(store.list_attached_policies(&s, &[], None, 5))
        .await
        .is_empty());
    let mut targets = vec![c.arn.clone(), root.arn().to_owned()];
    targets.sort();
    assert_eq!(
        ok(store.list_targets_for_policy(&s, "a", None, NO_LIMIT)).await,
        Some(targets)
    );
    assert_eq!(
        ok(store.list_targets_for_policy(&s, "nope", None, 5)).await,
        None
    );

    assert_eq!(
        ok(store.delete_policy(&s, "d")).await,
        Err(PolicyRefusal::Attached)
    );
    // Deleting a group detaches its policies.
    assert_eq!(
        ok(store.delete_thing_group(&s, "child", None)).await,
        Ok(true)
    );
    assert_eq!(
        ok(store.list_targets_for_policy(&s, "d", None, NO_LIMIT)).await,
        Some(vec![])
    );
    ok(store.delete_policy(&s, "d")).await.unwrap();
    assert!(ok(store.detach_policy(&s, "a", &c.arn)).await);
    assert!(!ok(store.detach_policy(&s, "a", &c.arn)).await);
    assert_eq!(
        names(
            ok(store.list_attached_policies(&s, std::slice::from_ref(&c.arn), None, NO_LIMIT))
                .await
        ),
        vec!["b"]
    );
    // Another account sees nothing.
    let other = fresh_scope();
    assert!(
        ok(store.list_attached_policies(&other, std::slice::from_ref(&c.arn), None, NO_LIMIT))
            .await
            .is_empty()
    );
    assert_eq!(
        ok(store.list_targets_for_policy(&other, "a", None, 5)).await,
        None
    );
}

/// Registers `records` (versions of one certificate) at once, record `i` on
/// `handles[i % handles.len()]`: exactly one registration wins.
async fn race_registrations(handles: &[Arc<dyn Store>], s: &Scope, records: &[CertificateRecord]) {
    let outcomes = race(handles, records.len(), |i, store| {
        let (s, record) = (s.clone(), records[i].clone());
        async move { store.register_certificate(&s, &record).await }
    })
    .await;
    let mut won = 0;
    for outcome in outcomes {
        match outcome {
            Ok(Ok(())) => won += 1,
            Err(StoreError::AlreadyExists) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}

pub async fn concurrent_registrations_of_one_certificate_exactly_one_wins(store: Arc<dyn Store>) {
    let s = fresh_scope();
    for _ in 0..3 {
        let id = hex_id();
        let records: Vec<CertificateRecord> = (0..6)
            .map(|i| CertificateRecord {
                generation_id: format!("gen-{i}"),
                ..cert(&s, &id, 1, None)
            })
            .collect();
        race_registrations(slice::from_ref(&store), &s, &records).await;
    }
    assert_eq!(ids(&*store, &s, None).await.len(), 3);
}

pub async fn concurrent_attach_and_delete_certificate_stay_consistent(store: Arc<dyn Store>) {
    let s = fresh_scope();
    add_thing(&*store, &s, "t").await;
    policy(&*store, &s, "p").await;
    for _ in 0..8 {
        let c = cert(&s, &hex_id(), 1, None);
        register(&*store, &s, &c).await;
        let (st, sc, id) = (store.clone(), s.clone(), c.id.clone());
        let attach =
            tokio::spawn(async move { st.attach_thing_principal(&sc, "t", &id, false, 1).await });
        let (st, sc, target) = (store.clone(), s.clone(), cert_target(&c));
        let attach_policy =
            tokio::spawn(async move { st.attach_policy(&sc, "p", &target, 100, 1).await });
        let (st, sc, id) = (store.clone(), s.clone(), c.id.clone());
        let delete = tokio::spawn(async move { st.delete_certificate(&sc, &id, false).await });
        let attached = attach.await.unwrap().unwrap();
        let policy_attached = attach_policy.await.unwrap().unwrap();
        let deleted = delete.await.unwrap().unwrap();
        match deleted {
            Ok(()) => {
                // Whatever attached first would have stopped the delete.
                assert_eq!(attached, Err(PrincipalRefusal::CertificateNotFound));
                assert_eq!(policy_attached, Err(PrincipalRefusal::CertificateNotFound));
                assert!(ok(store.get_certificate(&s, &c.id)).await.is_none());
            }
            Err(CertificateRefusal::AttachedToThings) => assert_eq!(attached, Ok(())),
            Err(CertificateRefusal::AttachedToPolicies) => {
                assert_eq!(policy_attached, Ok(()));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Never an attachment to a certificate that is gone.
        let things = ok(store.list_principal_things(&s, &c.id, None, NO_LIMIT)).await;
        let present = ok(store.get_certificate(&s, &c.id)).await.is_some();
        assert!(present || things.is_empty());
        let targets = ok(store.list_targets_for_policy(&s, "p", None, NO_LIMIT))
            .await
            .unwrap();
        assert!(present || !targets.contains(&c.arn));
        if present {
            ok(store.detach_thing_principal(&s, "t", &c.id))
                .await
                .unwrap();
        }
    }
}

pub async fn concurrent_attach_and_delete_thing_stay_consistent(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let c = cert(&s, &hex_id(), 1, None);
    register(&*store, &s, &c).await;
    for i in 0..8 {
        let name = format!("t{i}");
        add_thing(&*store, &s, &name).await;
        let (st, sc, n, id) = (store.clone(), s.clone(), name.clone(), c.id.clone());
        let attach =
            tokio::spawn(async move { st.attach_thing_principal(&sc, &n, &id, false, 1).await });
        let (st, sc, n) = (store.clone(), s.clone(), name.clone());
        let delete = tokio::spawn(async move { st.delete_thing(&sc, &n, None).await });
        let attached = attach.await.unwrap().unwrap();
        let deleted = delete.await.unwrap().unwrap();
        match (attached, deleted) {
            (Ok(()), Err(ThingRefusal::HasPrincipals)) => {
                assert!(ok(store.get_thing(&s, &name)).await.is_some());
            }
            (Err(PrincipalRefusal::ThingNotFound), Ok(true)) => {
                assert!(ok(store.get_thing(&s, &name)).await.is_none());
            }
            other => panic!("inconsistent outcome {other:?}"),
        }
    }
    // Every listed thing exists.
    for t in ok(store.list_principal_things(&s, &c.id, None, NO_LIMIT)).await {
        assert!(ok(store.get_thing(&s, &t)).await.is_some());
    }
}

pub async fn concurrent_attach_policy_and_delete_policy_stay_consistent(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let c = cert(&s, &hex_id(), 1, None);
    register(&*store, &s, &c).await;
    create_group(&*store, &s, "g", None).await;
    for i in 0..8 {
        let name = format!("p{i}");
        policy(&*store, &s, &name).await;
        let target = if i % 2 == 0 {
            cert_target(&c)
        } else {
            PolicyTarget::ThingGroup {
                name: "g".into(),
                arn: group_arn(&s, "g"),
            }
        };
        let (st, sc, n, t) = (store.clone(), s.clone(), name.clone(), target.clone());
        let attach = tokio::spawn(async move { st.attach_policy(&sc, &n, &t, 100, 1).await });
        let (st, sc, n) = (store.clone(), s.clone(), name.clone());
        let delete = tokio::spawn(async move { st.delete_policy(&sc, &n).await });
        let attached = attach.await.unwrap().unwrap();
        let deleted = delete.await.unwrap().unwrap();
        match (attached, deleted) {
            (Ok(()), Err(PolicyRefusal::Attached)) => {}
            (Err(PrincipalRefusal::PolicyNotFound), Ok(())) => {}
            other => panic!("inconsistent outcome {other:?}"),
        }
    }
    for p in
        ok(store.list_attached_policies(&s, &[c.arn.clone(), group_arn(&s, "g")], None, NO_LIMIT))
            .await
    {
        assert!(ok(store.get_policy(&s, &p.name)).await.is_some());
    }
}

pub async fn concurrent_issuing_ca_creation_agrees(store: Arc<dyn Store>) {
    let s = fresh_scope();
    let seen = race(slice::from_ref(&store), 6, |i, store| {
        let s = s.clone();
        async move {
            let candidate = IssuingCaRecord {
                id: format!("ca-{i}"),
                certificate_pem: format!("pem-{i}"),
                private_key_pem: format!("key-{i}"),
                created_at_ms: i as i64,
            };
            let code = ok(store.registration_code(&s, &format!("code-{i}"))).await;
            (ok(store.put_issuing_ca(&s, &candidate)).await, code)
        }
    })
    .await;
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    assert_eq!(ok(store.get_issuing_ca(&s)).await, Some(seen[0].0.clone()));
}

pub async fn certificate_registration_races_across_handles(db: &dyn Database) {
    let handles = open_handles(db, 2).await;
    let s = fresh_scope();
    let subject = unique("racing-").into_bytes();
    for _ in 0..3 {
        let id = hex_id();
        let records: Vec<CertificateRecord> = (0..handles.len())
            .map(|i| cert(&s, &id, i as i64, None))
            .collect();
        race_registrations(&handles, &s, &records).await;
    }
    // The per-subject CA limit holds across handles.
    let outcomes = race(&handles, 6, |i, store| {
        let (s, record) = (s.clone(), ca(&s, &hex_id(), &subject, i as i64));
        async move { store.register_ca_certificate(&s, &record, &[], 3).await }
    })
    .await;
    let mut registered = 0;
    for outcome in outcomes {
        match outcome.expect("no failure") {
            Ok(()) => registered += 1,
            Err(CertificateRefusal::TooManyWithSubject { limit: 3 }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(registered, 3);
    assert_eq!(
        ok(handles[0].find_ca_certificates_by_subject(&s, &subject))
            .await
            .len(),
        3
    );
}
