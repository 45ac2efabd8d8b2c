import streamlit as st

st.title("actions")
